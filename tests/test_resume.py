"""Kill and resume: a run resumed from a mid-epoch checkpoint ends with the weights of an unbroken run."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from diffplan.callbacks import RandomState, TrainClock

STEPS = 12  # 5 batches of 512 windows per epoch: the run crosses two epoch boundaries


class Crash(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at_step:
            raise RuntimeError("killed")


def train(callbacks: list[L.Callback], ema: bool, ckpt_path: str | None = None) -> L.LightningModule:
    from diffplan.algorithms.diffuser import Diffuser
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=16, stride=2, batch_size=512, progress=False)
    torch.manual_seed(0)
    module = Diffuser(dm.normalizer, dm.horizon, denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]},
                      goal_dims=dm.task.goal_dims, num_train_timesteps=20, warmup_steps=4)
    if ema:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks = [EMAWeightAveraging(decay=0.9), *callbacks]
    L.Trainer(max_steps=STEPS, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              callbacks=[RandomState(), *callbacks]).fit(module, dm, ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize(("kill_at", "ema"), [
    (7, True), pytest.param(7, False, marks=pytest.mark.slow), pytest.param(5, False, marks=pytest.mark.slow)])
def test_kill_and_resume_gives_the_weights_of_one_run(tiny_dataset, tmp_path, kill_at, ema):
    straight = train([], ema)
    checkpoints = ModelCheckpoint(tmp_path, every_n_train_steps=kill_at, save_top_k=-1)
    with pytest.raises(RuntimeError, match="killed"):
        train([checkpoints, Crash(kill_at + 2), TrainClock()], ema)
    clock = TrainClock()
    resumed = train([clock], ema, ckpt_path=str(tmp_path / f"epoch={(kill_at - 1) // 5}-step={kill_at}.ckpt"))
    first = straight.state_dict()
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, first[name]), name
    assert 0 < clock.previous < clock.minutes  # the minutes before the kill count, and those after it


def train_hierarchical(callbacks: list[L.Callback], ckpt_path: str | None = None) -> L.LightningModule:
    from diffplan.algorithms.hierarchical import HierarchicalDataModule, HierarchicalDiffuser

    dm = HierarchicalDataModule("pointmaze-umaze", horizon=4, jump=3, batch_size=256, progress=False)
    torch.manual_seed(0)
    level = {"denoiser_kwargs": {"dim": 8, "dim_mults": [1, 2]}, "num_train_timesteps": 20}
    module = HierarchicalDiffuser(dm.normalizer, dm.horizon, jump=3, goal_dims=dm.task.goal_dims, high_kwargs=level,
                                  low_kwargs=level, warmup_steps=4)
    L.Trainer(max_steps=STEPS, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              callbacks=[RandomState(), *callbacks]).fit(module, dm, ckpt_path=ckpt_path)
    return module


def test_hierarchical_kill_and_resume_gives_the_weights_of_one_run(tiny_dataset, tmp_path):
    """Both levels' loaders (the shorter one cycles) resume where they stood."""
    straight = train_hierarchical([])
    checkpoints = ModelCheckpoint(tmp_path, every_n_train_steps=7, save_top_k=-1)
    with pytest.raises(RuntimeError, match="killed"):
        train_hierarchical([checkpoints, Crash(9)])
    resumed = train_hierarchical([], ckpt_path=str(next(tmp_path.glob("*step=7.ckpt"))))
    first = straight.state_dict()
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, first[name]), name
