"""Classifier-free guidance, with composition of several conditions (Decision Diffuser, Ho & Salimans 2022)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffplan.guidance.base import Guidance, GuidanceContext

CondModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ClassifierFreeGuidance(Guidance):
    """``pred = pred(null) + sum_i scale_i * (pred(c_i) - pred(null))`` in one batched denoiser call.

    Args:
        null: (B, D) the condition vector with every condition dropped.
        conditions: list of (B, D) condition vectors, each with one condition (or a set of them) present.
        scales: one guidance scale per condition; 0 gives the unconditional prediction, 1 (with one
            condition) the plain conditional one.

    The denoiser must take ``(x, t, cond)``, so this guidance is the innermost of a composition (a planner puts
    its own classifier-free guidance last). The extra batch of ``len(conditions) + 1`` copies is the reason
    guidance costs one call per step, not two or more.
    """

    def __init__(self, null: torch.Tensor, conditions: list[torch.Tensor], scales: list[float]):
        super().__init__()
        if len(conditions) != len(scales):
            raise ValueError(f"Got {len(conditions)} conditions but {len(scales)} guidance scales; give one each.")
        self.null, self.conditions, self.scales = null, conditions, [float(s) for s in scales]
        self.batched = torch.cat([null, *conditions], dim=0)  # every step's condition batch, built once

    def predict(self, model_fn: CondModelFn, x: torch.Tensor, t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        n = len(self.conditions) + 1
        out = model_fn(x.repeat(n, *[1] * (x.dim() - 1)), t.repeat(n, *[1] * (t.dim() - 1)), self.batched)
        preds = out.chunk(n, dim=0)
        guided = preds[0].clone()
        for scale, pred in zip(self.scales, preds[1:]):
            guided = guided + scale * (pred - preds[0])
        return guided
