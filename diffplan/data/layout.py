"""TrajectoryLayout: the one place that packs named fields into the channels of a trajectory tensor."""

from __future__ import annotations

import torch


class TrajectoryLayout:
    """Channels are ``[actions, observations]`` (Diffuser's order). Tensors are (..., H, C)."""

    def __init__(self, obs_dim: int, act_dim: int):
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.slices = {"actions": slice(0, act_dim), "observations": slice(act_dim, act_dim + obs_dim)}

    @property
    def transition_dim(self) -> int:
        return self.obs_dim + self.act_dim

    def pack(self, fields: dict[str, torch.Tensor]) -> torch.Tensor:
        """{"actions": (..., H, A), "observations": (..., H, O)} -> (..., H, A + O); A = 0 packs states only."""
        if self.act_dim == 0:
            return fields["observations"]
        return torch.cat([fields["actions"], fields["observations"]], dim=-1)

    def unpack(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: x[..., s] for name, s in self.slices.items()}

    def channels(self, field: str, dims: tuple[int, ...] | list[int] | None = None) -> list[int]:
        """Channel indices of ``field`` (optionally only some of its dims)."""
        s = self.slices[field]
        chans = list(range(s.start, s.stop))
        return chans if dims is None else [chans[d] for d in dims]
