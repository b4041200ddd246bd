"""Inpainting constraints: channels of some time steps are held at known values throughout sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Inpaint:
    """``mask`` (B, H, C) bool marks the pinned entries, ``values`` (B, H, C) holds them (normalized)."""

    mask: torch.Tensor
    values: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.values.to(x.dtype), x)

    @classmethod
    def empty(cls, like: torch.Tensor) -> Inpaint:
        return cls(torch.zeros_like(like, dtype=torch.bool), torch.zeros_like(like))

    def pin(self, time_index: int, channels: list[int], values: torch.Tensor,
            rows: torch.Tensor | None = None) -> Inpaint:
        """Pin ``channels`` at ``time_index`` to ``values`` (B, len(channels)), in the rows where ``rows`` (B,) bool
        is True (None: all rows); returns self for chaining."""
        pinned = self.mask.new_ones(self.mask.shape[0]) if rows is None else rows.to(self.mask.device)
        pinned = pinned[:, None]
        self.mask[:, time_index, channels] |= pinned
        current = self.values[:, time_index, channels]
        self.values[:, time_index, channels] = torch.where(pinned, values.to(current), current)
        return self

    def __and__(self, other: Inpaint) -> Inpaint:
        return Inpaint(self.mask | other.mask, torch.where(other.mask, other.values, self.values))
