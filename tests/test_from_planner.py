"""A planner folder becomes a trainable module again: export -> from_planner -> to_planner plans bit-identically."""

from __future__ import annotations

import pytest
import torch

from diffplan.algorithms.decision_diffuser import DecisionDiffuser
from diffplan.algorithms.diffuser import Diffuser
from diffplan.algorithms.hierarchical import HierarchicalDiffuser
from diffplan.io import PlannerFolderError
from diffplan.planner import Planner


def _plans(planner: Planner, obs: torch.Tensor) -> torch.Tensor:
    plan = planner.plan(obs, generator=torch.Generator().manual_seed(3))
    return torch.cat([plan.observations.flatten(1), plan.actions.flatten(1)], 1)


@pytest.mark.parametrize("name, cls", [("diffuser", Diffuser), ("decision_diffuser", DecisionDiffuser),
                                       ("hierarchical", HierarchicalDiffuser)])
def test_export_from_planner_to_planner_plans_bit_identically(name, cls, request, tmp_path):
    planner = request.getfixturevalue(f"{name}_planner")
    planner.save_pretrained(tmp_path / "a")
    module = cls.from_planner(tmp_path / "a")
    again = module.to_planner(**module.planner_settings)
    obs = torch.tensor([[1.0, 1.0, 0.0, 0.0], [2.0, 1.5, 0.1, -0.1]])
    assert torch.equal(_plans(again, obs), _plans(Planner.from_pretrained(tmp_path / "a"), obs))
    assert again.config == planner.config


def test_from_planner_module_trains_and_changes_the_plans(diffuser_planner, tiny_module, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "a")
    module = Diffuser.from_planner(tmp_path / "a", learning_rate=1e-2)
    _, dm = tiny_module
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.losses(batch)["loss"].backward()
    opt.step()
    obs = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert not torch.equal(_plans(module.to_planner(**module.planner_settings), obs), _plans(diffuser_planner, obs))


def test_from_planner_refuses_another_algorithms_folder(decision_diffuser_planner, tmp_path):
    decision_diffuser_planner.save_pretrained(tmp_path / "dd")
    with pytest.raises((TypeError, PlannerFolderError), match="DiffuserPlanner"):
        Diffuser.from_planner(tmp_path / "dd")


def test_weights_load_into_a_model_with_a_new_part_only_when_asked(tiny_diffusion_forcing, goal_conditioned_df):
    """An unconditioned DF folder starts a goal-conditioned fine-tune: the goal embedding is the one new part."""
    from diffplan.diffusion.objective import load_planner_weights

    module, dm = tiny_diffusion_forcing
    planner = module.to_planner(dm.task, dm.stride)
    (conditioned, _), _ = goal_conditioned_df
    with pytest.raises(RuntimeError, match="cond"):
        load_planner_weights(conditioned, planner)
    new = load_planner_weights(conditioned, planner, keep_new=True)
    assert new and all(name.startswith("denoiser.cond.") for name in new)
    assert torch.equal(conditioned.denoiser.out.weight, module.denoiser.out.weight)
