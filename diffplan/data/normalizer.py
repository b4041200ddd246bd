"""Normalizer: per-dimension min-max scaling of each field to [-1, 1], fitted once, saved with the weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffplan.configurable import Configurable


class Normalizer(nn.Module, Configurable):
    """Holds ``low``/``high`` buffers per field (``observations``, ``actions``).

    Dimensions that never vary get scale 1, so they pass through shifted instead of dividing by zero.
    """

    def __init__(self, dims: dict[str, int]):
        super().__init__()
        self.save_config(locals())
        self.fields = list(dims)
        for name, dim in dims.items():
            self.register_buffer(f"{name}_low", -torch.ones(dim))
            self.register_buffer(f"{name}_high", torch.ones(dim))

    @classmethod
    def fit(cls, data: dict[str, np.ndarray]) -> Normalizer:
        """Fit from arrays of shape (N, dim) per field."""
        norm = cls({k: int(v.shape[-1]) for k, v in data.items()})
        for name, values in data.items():
            values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
            if not np.isfinite(values).all():
                raise ValueError(f"Field {name!r} contains NaN or inf; the dataset is corrupt.")
            getattr(norm, f"{name}_low").copy_(torch.as_tensor(values.min(0)))
            getattr(norm, f"{name}_high").copy_(torch.as_tensor(values.max(0)))
        return norm

    def _scale(self, field: str, dims: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = getattr(self, f"{field}_low"), getattr(self, f"{field}_high")
        if dims is not None:
            low, high = low[dims], high[dims]
        half = (high - low) / 2
        half = torch.where(half > 1e-6, half, torch.ones_like(half))
        return (high + low) / 2, half

    def normalize(self, field: str, x: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
        centre, half = self._scale(field, dims)
        return (x - centre) / half

    def unnormalize(self, field: str, x: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
        centre, half = self._scale(field, dims)
        return x * half + centre
