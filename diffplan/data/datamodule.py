"""LightningDataModule over trajectory windows of a task's Minari dataset."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diffplan.data.episodes import load_episodes
from diffplan.data.normalizer import Normalizer
from diffplan.data.sampler import ResumableSampler
from diffplan.data.windows import TrajectoryWindows
from diffplan.tasks import Task, load_task


class PlanningDataModule(L.LightningDataModule):
    """Loads episodes and fits the normalizer in ``__init__``, so the model can be built with real statistics.

    Args:
        task: task card name or path (``pointmaze-umaze``).
        dataset_id: any Minari dataset id; defaults to the task's locally generated one. Pass the hosted id
            (e.g. ``D4RL/pointmaze/umaze-v2``) to train on downloaded data with the same command.
        horizon: plan points per window (defaults to the task card).
        stride: environment steps between plan points (defaults to the task card).
        value_target: what a value head learns, ``"window"`` or ``"returns"`` (see ``TrajectoryWindows``).
        normalizer: kind of normalizer (``"minmax"``, ``"gaussian"``, ``"cdf"``) for observations and actions,
            or a dict field -> kind (fields: observations, actions, returns); default: the task card's
            ``defaults.normalizer``, else min-max. Returns-to-go stay min-max unless named.
        termination_penalty: added to the last reward of episodes that end in a fall (the papers use -100);
            default: the task card's ``defaults.termination_penalty``, else 0.
        join_episodes: windows run on across episodes cut from one continuous stream (see ``TrajectoryWindows``).
    """

    def __init__(self, task: str, dataset_id: str | None = None, horizon: int | None = None,
                 stride: int | None = None, batch_size: int = 128, num_workers: int = 0, seed: int = 0,
                 progress: bool = True, value_target: str = "window", normalizer: str | dict[str, str] | None = None,
                 termination_penalty: float | None = None, join_episodes: bool = False):
        super().__init__()
        self.task: Task = load_task(task)
        self.dataset_id = dataset_id or self.task.dataset.local_id
        self.horizon = int(horizon or self.task.defaults.get("horizon", 32))
        self.stride = int(stride or self.task.defaults.get("stride", 1))
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self._resume: dict[str, int] | None = None  # set from a checkpoint by load_state_dict
        self.episodes = load_episodes(self.dataset_id, self.task, progress=progress)
        if termination_penalty is None:
            termination_penalty = float(self.task.defaults.get("termination_penalty", 0.0))
        self.termination_penalty = termination_penalty
        self.windows = TrajectoryWindows(self.episodes, self.horizon, self.stride, self.task.velocity_dims,
                                         self.task.discount, value_target, termination_penalty, join_episodes)
        kinds = normalizer if normalizer is not None else self.task.defaults.get("normalizer", "minmax")
        if isinstance(kinds, str):
            kinds = {"observations": kinds, "actions": kinds}
        # Held (padded) rows have zero velocity and action, which lie inside the data's range.
        self.normalizer = Normalizer.fit({"actions": self.episodes.actions,
                                          "observations": self.episodes.observations,
                                          "returns": self.windows.returns_to_go[:, None]}, kinds)

    @property
    def obs_dim(self) -> int:
        return self.episodes.obs_dim

    @property
    def act_dim(self) -> int:
        return self.episodes.act_dim

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.windows)

    def loader(self, windows: Dataset, seed_offset: int = 0, collate_fn: Callable | None = None) -> DataLoader:
        """Shuffled batches of ``windows`` (seed ``seed + seed_offset``) that resume mid-epoch from a checkpoint;
        ``collate_fn`` as in ``DataLoader`` (default: stack the items)."""
        trainer = self.trainer
        sampler = ResumableSampler(windows, trainer.world_size if trainer else 1, trainer.global_rank if trainer else 0,
                                   seed=self.seed + seed_offset)
        if self._resume is not None:
            sampler.resume(self._resume["epoch"], self._resume["batches"], self.batch_size)
        # its own generator: making the iterator must not draw from the global RNG that the training step uses
        return DataLoader(windows, batch_size=self.batch_size, sampler=sampler, drop_last=True, collate_fn=collate_fn,
                          num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed),
                          persistent_workers=self.num_workers > 0)

    def state_dict(self) -> dict[str, int]:
        """Where training stands in the data (saved in Lightning checkpoints): epoch, batches done in it, seed."""
        trainer = self.trainer
        if trainer is None:
            return {}
        epoch, batches = trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if batches >= trainer.num_training_batches:
            epoch, batches = epoch + 1, 0
        return {"epoch": epoch, "batches": batches, "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict and state_dict["seed"] != self.seed:
            raise ValueError(f"The checkpoint was trained with data seed {state_dict['seed']}, this run has seed "
                             f"{self.seed}; resume with --data.seed {state_dict['seed']}.")
        self._resume = state_dict or None

    def describe(self) -> str:
        e = self.episodes
        return (f"{self.dataset_id}: {len(e.episode_lengths)} episodes, {len(e.observations)} states, "
                f"{len(self.windows)} windows of {self.horizon} x stride {self.stride} "
                f"(mean episode length {np.mean(e.episode_lengths - 1):.1f})")
