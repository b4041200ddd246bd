"""Callbacks whose state rides in Lightning checkpoints, so a resumed run continues the one it resumes."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


class TrainClock(L.Callback):
    """Training wall-clock minutes, summed over every resumed segment of a run."""

    def __init__(self) -> None:
        self.previous = 0.0  # minutes of the segments before this one (from the checkpoint)
        self._start: float | None = None
        self._end: float | None = None

    @property
    def minutes(self) -> float:
        if self._start is None:
            return self.previous
        return self.previous + ((self._end or time.perf_counter()) - self._start) / 60

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._end = time.perf_counter(), None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"minutes": self.minutes}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.previous = float(state_dict["minutes"])


class RandomState(L.Callback):
    """Saves torch's global RNG (CPU and CUDA) with the checkpoint and restores it when training resumes.

    The noise and timesteps of every training step come from it: without this, a resumed run draws other noise
    than the run it continues. Restored at ``on_train_start``, after everything that runs before the first step.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending["cpu"])
        if self._pending["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._pending["cuda"])
        self._pending = None
