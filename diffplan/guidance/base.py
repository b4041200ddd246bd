"""The guidance interface of the sampling loop."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Guidance(nn.Module):
    """Two hooks, both identities here.

    - ``predict(model_fn, x, t)``: the denoiser's output at (x_t, t); override to combine several calls
      (classifier-free guidance) or to correct the prediction (training-free guidance).
    - ``step(x, t)``: the sample after a scheduler step to noise level t; override to move it (value gradient).
    """

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model_fn(x, t)

    def step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x


class Compose(Guidance):
    """Apply several guidances: predictions nest (first outermost), steps run in order."""

    def __init__(self, *guidances: Guidance):
        super().__init__()
        self.guidances = nn.ModuleList(guidances)

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        for g in reversed(self.guidances):
            model_fn = functools.partial(g.predict, model_fn)
        return model_fn(x, t)

    def step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        for g in self.guidances:
            x = g.step(x, t)
        return x
