"""Normalizer: a per-field, per-dimension map to normalized units, fitted once and saved with the weights.

Each field (``observations``, ``actions``, ``returns``) has its own kind, chosen by name:

- ``"minmax"``: the data's [min, max] of each dim maps to [-1, 1] (Diffuser's mazes, the default);
- ``"gaussian"``: zero mean, unit standard deviation per dim (Diffuser's locomotion setting); unbounded;
- ``"cdf"``: each dim's empirical CDF, stretched to [-1, 1] (Decision Diffuser's setting): a piecewise-linear
  map through the data's quantiles, so skewed or heavy-tailed dims spread evenly over the range.

The statistics are buffers (``<field>_<stat>``), so they travel in ``weights.safetensors``; ``config.json``
holds the dims and the kinds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffplan.configurable import Configurable

CDF_KNOTS = 101  # quantiles per dim of the "cdf" kind (DD's CDFNormalizer uses 100 histogram bins)


class _MinMax:
    bounded = True
    stats = ("low", "high")

    @staticmethod
    def init(dim: int) -> dict[str, torch.Tensor]:
        return {"low": -torch.ones(dim), "high": torch.ones(dim)}

    @staticmethod
    def fit(values: np.ndarray) -> dict[str, torch.Tensor]:
        return {"low": torch.as_tensor(values.min(0)), "high": torch.as_tensor(values.max(0))}

    @staticmethod
    def _scale(s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        half = (s["high"] - s["low"]) / 2
        # dims that never vary pass through shifted instead of dividing by zero
        return (s["high"] + s["low"]) / 2, torch.where(half > 1e-6, half, torch.ones_like(half))

    def forward(self, x: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        centre, half = self._scale(s)
        return (x - centre) / half

    def inverse(self, y: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        centre, half = self._scale(s)
        return y * half + centre


class _Gaussian:
    bounded = False
    stats = ("mean", "std")

    @staticmethod
    def init(dim: int) -> dict[str, torch.Tensor]:
        return {"mean": torch.zeros(dim), "std": torch.ones(dim)}

    @staticmethod
    def fit(values: np.ndarray) -> dict[str, torch.Tensor]:
        std = values.std(0)
        return {"mean": torch.as_tensor(values.mean(0)), "std": torch.as_tensor(np.where(std > 1e-6, std, 1.0))}

    def forward(self, x: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        return (x - s["mean"]) / s["std"]

    def inverse(self, y: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        return y * s["std"] + s["mean"]


class _EmpiricalCDF:
    """Piecewise-linear through (quantile_k, -1 + 2k/(K-1)); linear extrapolation past the ends."""

    bounded = True
    stats = ("knots",)

    @staticmethod
    def init(dim: int) -> dict[str, torch.Tensor]:
        return {"knots": torch.linspace(-1, 1, CDF_KNOTS)[:, None].repeat(1, dim)}

    @staticmethod
    def fit(values: np.ndarray) -> dict[str, torch.Tensor]:
        knots = np.quantile(values, np.linspace(0, 1, CDF_KNOTS), axis=0)  # (K, dim)
        # repeated quantiles (discrete or constant dims) are pulled apart by a tiny step, so the map stays invertible
        for k in range(1, CDF_KNOTS):
            knots[k] = np.maximum(knots[k], knots[k - 1] + 1e-5 * np.maximum(np.abs(knots[k - 1]), 1e-3))
        return {"knots": torch.as_tensor(knots)}

    @staticmethod
    def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
        """Per-dim linear interpolation: x (..., D), xp / fp (K, D) increasing along K."""
        flat = x.reshape(-1, x.shape[-1]).T.contiguous()  # (D, N)
        i = torch.searchsorted(xp.T.contiguous(), flat).clamp(1, xp.shape[0] - 1)  # (D, N)
        x0, x1 = xp.T.gather(1, i - 1), xp.T.gather(1, i)
        y0, y1 = fp.T.gather(1, i - 1), fp.T.gather(1, i)
        y = y0 + (flat - x0) * (y1 - y0) / (x1 - x0)
        return y.T.reshape(x.shape)

    def forward(self, x: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        knots = s["knots"]
        return self._interp(x, knots, self._levels(knots))

    def inverse(self, y: torch.Tensor, s: dict[str, torch.Tensor]) -> torch.Tensor:
        knots = s["knots"]
        return self._interp(y, self._levels(knots), knots)

    @staticmethod
    def _levels(knots: torch.Tensor) -> torch.Tensor:
        return torch.linspace(-1, 1, knots.shape[0], device=knots.device, dtype=knots.dtype)[:, None].expand_as(knots)


KINDS = {"minmax": _MinMax(), "gaussian": _Gaussian(), "cdf": _EmpiricalCDF()}


class Normalizer(nn.Module, Configurable):
    """Normalize each field with its own kind (``kinds``: field -> "minmax" | "gaussian" | "cdf").

    Args:
        dims: field -> size of its last axis.
        kinds: field -> kind name; fields not named are min-max (folders saved before kinds existed load as such).
    """

    def __init__(self, dims: dict[str, int], kinds: dict[str, str] | None = None):
        super().__init__()
        kinds = {name: (kinds or {}).get(name, "minmax") for name in dims}
        unknown = {k for k in kinds.values() if k not in KINDS} | (set(kinds) - set(dims))
        if unknown:
            raise ValueError(f"Unknown normalizer kind(s) or field(s) {sorted(unknown)}; kinds are {sorted(KINDS)} "
                             f"and fields {sorted(dims)}.")
        self.save_config({"dims": dict(dims), "kinds": kinds})
        self.fields, self.kinds = list(dims), kinds
        for name, dim in dims.items():
            for stat, value in KINDS[kinds[name]].init(dim).items():
                self.register_buffer(f"{name}_{stat}", value.float())

    @classmethod
    def fit(cls, data: dict[str, np.ndarray], kinds: dict[str, str] | None = None) -> Normalizer:
        """Fit from arrays of shape (N, dim) per field."""
        norm = cls({k: int(v.shape[-1]) for k, v in data.items()}, kinds)
        for name, values in data.items():
            values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
            if not np.isfinite(values).all():
                raise ValueError(f"Field {name!r} contains NaN or inf; the dataset is corrupt.")
            for stat, value in KINDS[norm.kinds[name]].fit(values).items():
                getattr(norm, f"{name}_{stat}").copy_(value)
        return norm

    def is_bounded(self, *fields: str) -> bool:
        """Whether normalized data of these fields lie in [-1, 1] (samplers may then clip predicted x0)."""
        return all(KINDS[self.kinds[f]].bounded for f in fields)

    def _stats(self, field: str, dims: list[int] | None) -> dict[str, torch.Tensor]:
        if field not in self.kinds:
            raise KeyError(f"The normalizer has no field {field!r}; it has {self.fields}.")
        stats = {s: getattr(self, f"{field}_{s}") for s in KINDS[self.kinds[field]].stats}
        return stats if dims is None else {s: v[..., dims] for s, v in stats.items()}

    def normalize(self, field: str, x: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
        """Environment units -> normalized units; ``x`` (..., dim) or (..., len(dims))."""
        return KINDS[self.kinds[field]].forward(x, self._stats(field, dims))

    def unnormalize(self, field: str, x: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
        """Normalized units -> environment units (the inverse of ``normalize``)."""
        return KINDS[self.kinds[field]].inverse(x, self._stats(field, dims))
