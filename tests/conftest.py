"""Shared fixtures: a private Minari root with tiny datasets that the tests build themselves."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="diffplan-tests-"))
os.environ["MINARI_DATASETS_PATH"] = str(_ROOT / "datasets")
os.environ["DIFFPLAN_CACHE"] = str(_ROOT / "cache")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import lightning  # noqa: F401  (imported before any test captures stderr: its log handler binds to the real one)
import numpy as np
import pytest
import torch

from diffplan.tasks import load_task

TINY_STEPS = 3000


def fit_a_few_steps(module, dm, steps: int = 3):
    """Three Lightning training steps: enough to exercise fit() and get non-initial weights."""
    import lightning as L

    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, dm)
    return module, dm


@pytest.fixture()
def loss_drop():
    """``loss_drop(model, batch, steps, lr, key)``: the ratio of ``key`` loss after/before Adam steps on one batch."""

    def run(model, batch, steps: int, lr: float, key: str = "loss") -> float:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        torch.manual_seed(1)
        first = model.losses(batch)[key].item()
        for _ in range(steps):
            opt.zero_grad()
            model.losses(batch)["loss"].backward()
            opt.step()
        torch.manual_seed(1)
        return model.losses(batch)[key].item() / first

    return run


@pytest.fixture(scope="session")
def umaze():
    return load_task("pointmaze-umaze")


@pytest.fixture(scope="session")
def tiny_dataset(umaze):
    """3k steps of the umaze recipe (20 reference episodes) under the task's local id."""
    from diffplan.data.recipes import generate_dataset

    return generate_dataset(umaze, steps=TINY_STEPS, seed=7, progress=False, reference_episodes=20)


@pytest.fixture(scope="session")
def tiny_module(tiny_dataset):
    """A small Diffuser objective (with value head) trained for a few steps on the tiny dataset."""
    from diffplan.algorithms.diffuser import Diffuser
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=16, stride=2, batch_size=16, progress=False)
    torch.manual_seed(0)
    module = Diffuser(dm.normalizer, dm.horizon, denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]},
                      goal_dims=dm.task.goal_dims, num_train_timesteps=20)
    return fit_a_few_steps(module, dm)


@pytest.fixture(scope="session")
def tiny_hierarchical(tiny_dataset):
    """A small Hierarchical Diffuser: 4 subgoals every 3 steps, trained for a few steps."""
    from diffplan.algorithms.hierarchical import HierarchicalDataModule, HierarchicalDiffuser

    dm = HierarchicalDataModule("pointmaze-umaze", horizon=4, jump=3, batch_size=8, progress=False)
    torch.manual_seed(0)
    level = {"denoiser_kwargs": {"dim": 8, "dim_mults": [1, 2]}, "num_train_timesteps": 20}
    module = HierarchicalDiffuser(dm.normalizer, dm.horizon, jump=3, goal_dims=dm.task.goal_dims,
                                  high_kwargs=level, low_kwargs=level)
    return fit_a_few_steps(module, dm)


@pytest.fixture()
def diffuser_planner(tiny_module):
    module, dm = tiny_module
    return module.to_planner(dm.task, dm.stride, num_inference_steps=5)


@pytest.fixture()
def hierarchical_planner(tiny_hierarchical):
    module, dm = tiny_hierarchical
    return module.to_planner(dm.task, dm.stride, high={"num_inference_steps": 5}, low={"num_inference_steps": 3})


@pytest.fixture(scope="session")
def tiny_decision_diffuser(tiny_dataset):
    """A small Decision Diffuser (2 history states, return-conditioned) trained for a few steps."""
    from diffplan.algorithms.decision_diffuser import DecisionDiffuser
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=8, stride=1, batch_size=16, progress=False)
    torch.manual_seed(0)
    module = DecisionDiffuser(dm.normalizer, dm.horizon, history=2, denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]},
                              inverse_dynamics_kwargs={"hidden": 16}, num_train_timesteps=20)
    return fit_a_few_steps(module, dm)


@pytest.fixture()
def decision_diffuser_planner(tiny_decision_diffuser):
    module, dm = tiny_decision_diffuser
    return module.to_planner(dm.task, 1, num_inference_steps=4)


@pytest.fixture(scope="session")
def tiny_diffusion_forcing(tiny_dataset):
    """A small causal Diffusion Forcing model: 4 tokens of 3 env steps, trained for a few steps."""
    from diffplan.algorithms.diffusion_forcing import DiffusionForcing
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=12, stride=1, batch_size=16, progress=False)
    torch.manual_seed(0)
    module = DiffusionForcing(dm.normalizer, dm.horizon, frame_stack=3, num_train_timesteps=20,
                              denoiser_kwargs={"d_model": 16, "depth": 2, "heads": 2, "emb_dim": 16})
    return fit_a_few_steps(module, dm)


@pytest.fixture()
def goal_conditioned_df(tiny_dataset):
    """A small non-causal, goal-conditioned DF trained a few steps, and its denoiser's weights before training."""
    from diffplan.algorithms.diffusion_forcing import DiffusionForcing
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=12, stride=1, batch_size=16, progress=False)
    torch.manual_seed(0)
    module = DiffusionForcing(dm.normalizer, dm.horizon, frame_stack=3, num_train_timesteps=20, causal=False,
                              goal_condition=True, goal_dims=dm.task.goal_dims,
                              denoiser_kwargs={"d_model": 16, "depth": 2, "heads": 2, "emb_dim": 16})
    untrained = {k: v.clone() for k, v in module.denoiser.state_dict().items()}
    return fit_a_few_steps(module, dm), untrained


@pytest.fixture()
def diffusion_forcing_planner(tiny_diffusion_forcing):
    module, dm = tiny_diffusion_forcing
    return module.to_planner(dm.task, dm.stride, num_inference_steps=4)


@pytest.fixture(params=["diffuser", "hierarchical"])
def planner(request):
    """Every goal-reaching planner passes the same planner tests."""
    return request.getfixturevalue(f"{request.param}_planner")


@pytest.fixture(params=["diffuser", "hierarchical", "decision_diffuser", "diffusion_forcing"])
def any_planner(request):
    """Every planner passes the generic planner tests (determinism, control loop, folders, bad input)."""
    return request.getfixturevalue(f"{request.param}_planner")


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("pointmaze/speed.py")``: a script under benchmarks/ loaded as a module (not a package)."""
    import importlib.util

    def load(relative: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / relative
        spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture()
def obs_batch():
    """Three PointMaze observations in free cells of the umaze: (3, 4)."""
    return np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.1, -0.1], [0.0, 1.0, 0.0, 0.0]])
