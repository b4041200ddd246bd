"""Hierarchical Diffuser (Chen et al., ICLR 2024): jumpy subgoals every K steps, then a low-level plan per segment.

The high level is a Diffuser over states taken every ``jump`` env steps (start and goal inpainted, optionally
value-guided); the low level is a Diffuser over the ``jump / low_stride + 1`` points between two consecutive
subgoals (every ``low_stride`` env steps; 1 = every step, as in the paper), with both ends inpainted. Both levels train together from one dataset; all segments of a plan are sampled in one
batch through the same sampler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader

from diffplan.algorithms.diffuser import Diffuser
from diffplan.data.datamodule import PlanningDataModule
from diffplan.data.normalizer import Normalizer
from diffplan.data.windows import TrajectoryWindows
from diffplan.diffusion.objective import load_planner_weights
from diffplan.diffusion.optim import adamw_with_warmup
from diffplan.guidance.base import Guidance
from diffplan.planner import Plan, PlanContext, Planner
from diffplan.tasks import Task


def low_level_horizon(jump: int, low_stride: int) -> int:
    """Points of one low-level segment, both subgoals included."""
    if jump < 1 or low_stride < 1 or jump % low_stride:
        raise ValueError(f"low_stride={low_stride} must be a positive divisor of jump={jump} "
                         f"(e.g. low_stride=3 or 5 for jump=15).")
    return jump // low_stride + 1


class HierarchicalDataModule(PlanningDataModule):
    """Batches ``{"high": windows of horizon points jump steps apart, "low": windows spanning jump steps}``.

    Args:
        horizon: high-level plan points (subgoals, start and goal included).
        jump: env steps between subgoals (K; 15 in the paper's mazes).
        low_stride: env steps between low-level plan points; must divide ``jump``.
    """

    def __init__(self, task: str, dataset_id: str | None = None, horizon: int | None = None, jump: int = 15,
                 low_stride: int = 1, batch_size: int = 128, num_workers: int = 0, seed: int = 0,
                 progress: bool = True):
        low_horizon = low_level_horizon(jump, low_stride)
        super().__init__(task, dataset_id, horizon, jump, batch_size, num_workers, seed, progress)
        self.jump, self.low_stride = jump, low_stride
        self.low_windows = TrajectoryWindows(self.episodes, low_horizon, low_stride, self.task.velocity_dims,
                                             self.task.discount)

    def train_dataloader(self) -> CombinedLoader:
        """Both levels' batches; each loader resumes mid-epoch from a checkpoint (``PlanningDataModule.loader``)."""
        return CombinedLoader({"high": self.loader(self.windows), "low": self.loader(self.low_windows, seed_offset=1)},
                              mode="max_size_cycle")

    def describe(self) -> str:
        return super().describe() + (f"; low level: {len(self.low_windows)} windows of {self.low_windows.horizon} "
                                     f"points every {self.low_stride} steps")


class HierarchicalDiffuser(L.LightningModule):
    """Two Diffuser objectives trained side by side; ``loss = high + low``.

    Args:
        normalizer, horizon, goal_dims: linked from the datamodule (horizon = high-level points).
        jump, low_stride: must equal the datamodule's.
        high_kwargs / low_kwargs: ``Diffuser`` arguments of each level (denoiser size, value head, ...).
    """

    def __init__(self, normalizer: Normalizer, horizon: int, jump: int = 15, low_stride: int = 1,
                 goal_dims: tuple[int, ...] = (), high_kwargs: dict[str, Any] | None = None, low_kwargs: dict[str, Any] | None = None,
                 learning_rate: float = 2e-4, warmup_steps: int = 500):
        super().__init__()
        self.save_hyperparameters(ignore=["normalizer"])
        obs_dim = normalizer.config["dims"]["observations"]
        self.jump, self.low_stride = jump, low_stride
        self.high = Diffuser(normalizer, horizon, goal_dims=goal_dims, **(high_kwargs or {}))
        low = {"value_head": False, **(low_kwargs or {})}
        self.low = Diffuser(normalizer, low_level_horizon(jump, low_stride), goal_dims=tuple(range(obs_dim)), **low)

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        for name in ("jump", "low_stride"):
            if getattr(dm, name, None) != getattr(self, name):
                raise ValueError(f"model {name}={getattr(self, name)} but data {name}={getattr(dm, name, None)}; "
                                 f"set both to the same value.")

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        high, low = self.high.losses(batch["high"]), self.low.losses(batch["low"])
        logs = {f"train/high_{k}": v for k, v in high.items()} | {f"train/low_{k}": v for k, v in low.items()}
        loss = high["loss"] + low["loss"]
        self.log_dict({**logs, "train/loss": loss}, prog_bar=False, batch_size=batch["high"]["actions"].shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        return adamw_with_warmup(self.parameters(), self.device, self.hparams.learning_rate,
                                 warmup_steps=self.hparams.warmup_steps)

    def to_planner(self, task: Task, stride: int, **planner_kwargs: Any) -> HierarchicalPlanner:
        """``planner_kwargs``: control-loop settings, plus ``high`` / ``low`` dicts for each level's sampler."""
        high_kw, low_kw = planner_kwargs.pop("high", {}), planner_kwargs.pop("low", {})
        obs_dim = self.high.layout.obs_dim
        return HierarchicalPlanner(
            task, high=self.high.to_planner(task, self.jump, **high_kw),
            low=self.low.to_planner(task, self.low_stride, goal_dims=list(range(obs_dim)), **low_kw), **planner_kwargs)


    @classmethod
    def from_planner(cls, path: str | Path, **overrides: Any) -> HierarchicalDiffuser:
        """Both levels of a Hierarchical Diffuser folder as a training module (see ``TrajectoryDiffusion.from_planner``);
        ``module.to_planner(**module.planner_settings)`` exports the same planner again."""
        planner = HierarchicalPlanner.from_pretrained(path)
        levels = {}
        for name in ("high", "low"):
            arguments, settings = Diffuser.planner_arguments(getattr(planner, name))
            drop = ("normalizer", "horizon", "goal_dims")
            levels[name] = ({k: v for k, v in arguments.items() if k not in drop}, settings)
        high = planner.high
        module = cls(**{"normalizer": high.normalizer, "horizon": high.horizon, "jump": high.stride,
                        "low_stride": planner.low.stride, "goal_dims": tuple(high.goal_dims),
                        "high_kwargs": levels["high"][0], "low_kwargs": levels["low"][0], **overrides})
        for name in ("high", "low"):
            load_planner_weights(getattr(module, name), getattr(planner, name))
        level_settings = {name: {k: v for k, v in levels[name][1].items() if k not in ("task", "stride", "goal_dims")}
                          for name in ("high", "low")}
        module.planner_settings = {"task": planner.task, "stride": planner.low.stride, **level_settings,
                                   **{k: v for k, v in planner.config.items() if k not in ("high", "low")}}
        return module


class HierarchicalPlanner(Planner):
    """Subgoals from ``high``, then every segment between consecutive subgoals from ``low`` in one batch.

    The levels are any two planners composed through ``sample``. The plan has ``(H_high - 1) * (H_low - 1) + 1``
    points at the low level's stride; ``Plan.subgoals`` holds the high-level plan.

    Args:
        high, low: the two levels (``DiffuserPlanner`` s as trained by ``HierarchicalDiffuser``).
        jit: set both levels' ``jit`` (None keeps what each level was saved with).
    """

    components = ("high", "low")

    def __init__(self, task: Task, high: Planner, low: Planner, jit: bool | None = None, **planner_kwargs: Any):
        super().__init__(task, **planner_kwargs)
        self.save_config(locals())
        if high.stride != (low.horizon - 1) * low.stride:
            raise ValueError(f"High-level stride {high.stride} must equal the low level's span "
                             f"{(low.horizon - 1) * low.stride} (horizon - 1) x stride.")
        self.high, self.low = high, low
        if jit is not None:
            self.high.jit = self.low.jit = jit

    @property
    def obs_dim(self) -> int:
        return self.high.obs_dim

    def sample(self, context: PlanContext, n: int = 1, guidance: Guidance | None = None,
               generator: torch.Generator | None = None) -> Plan:
        """Guidance steers the high level (the subgoals); segments then join them."""
        top = self.high.sample(context, n, guidance, generator)
        b, h, o = top.observations.shape
        starts = top.observations[:, :-1].reshape(-1, o)
        ends = top.observations[:, 1:].reshape(-1, o)
        segments = self.low.sample(PlanContext(obs=starts, goal=ends), 1, None, generator)  # (B * (h - 1), K + 1, .)

        def join(field: torch.Tensor) -> torch.Tensor:
            seg = field.view(b, h - 1, field.shape[1], field.shape[2])
            return torch.cat([seg[:, :, :-1].reshape(b, -1, field.shape[2]), seg[:, -1, -1:]], dim=1)

        return Plan(observations=join(segments.observations), actions=join(segments.actions),
                    stride=self.low.stride, values=top.values, subgoals=top.observations)
