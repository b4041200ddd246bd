"""The optimizer every diffplan objective uses: AdamW (fused where supported) with linear warm-up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adamw_with_warmup(params: Iterable[torch.nn.Parameter], device: torch.device, learning_rate: float,
                      weight_decay: float = 0.0, warmup_steps: int = 500) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` return value; the learning rate ramps up over ``warmup_steps``."""
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    warmup = max(1, warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
