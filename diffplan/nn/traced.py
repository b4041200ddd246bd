"""Traced, frozen copies of a network, one per input shape: fewer Python and dispatch costs on CPU at batch 1."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn


class TracedCache:
    """``cache(module, *inputs)`` runs ``module`` through a ``torch.jit`` trace made for these input shapes.

    Outputs equal the eager module's up to float rounding, and so do gradients with respect to the inputs (the
    weights are frozen constants: gradient guidance can use the trace, training cannot). The trace is made at the
    first call for a shape, so build the cache on a trained module; it must be dropped (a new cache) if the weights
    change.
    """

    def __init__(self) -> None:
        self._traced: dict[tuple, torch.jit.ScriptModule] = {}

    def __call__(self, module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        key = (id(module),) + tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        if key not in self._traced:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                example = tuple(x.detach() for x in inputs)
                self._traced[key] = torch.jit.freeze(torch.jit.trace(module.eval(), example))
        return self._traced[key](*inputs)

    def bind(self, module: nn.Module) -> Callable[..., torch.Tensor]:
        """``module`` as a function of its inputs, run through this cache."""
        return lambda *inputs: self(module, *inputs)
