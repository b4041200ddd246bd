"""Hierarchical Diffuser: subgoal constraints, joined segments, and its reductions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffplan.algorithms.diffuser import Diffuser
from diffplan.algorithms.hierarchical import HierarchicalPlanner
from diffplan.planner import PlanContext


def test_every_segment_starts_and_ends_at_its_subgoals(hierarchical_planner, obs_batch):
    goal = np.array([-1.0, 1.0])
    plan = hierarchical_planner.plan(obs_batch, goal=goal, generator=torch.Generator().manual_seed(0))
    k, h = hierarchical_planner.high.stride, hierarchical_planner.high.horizon
    assert plan.observations.shape == (3, (h - 1) * k + 1, 4) and plan.stride == 1
    torch.testing.assert_close(plan.observations[:, ::k], plan.subgoals, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plan.observations[:, 0], torch.as_tensor(obs_batch, dtype=torch.float32))
    torch.testing.assert_close(plan.observations[:, -1, :2], torch.tensor(goal, dtype=torch.float32).expand(3, 2))


def test_segments_are_sampled_in_one_batch_and_join_without_gaps(hierarchical_planner, obs_batch):
    calls, segments = [], []
    low = hierarchical_planner.low
    original = low.sample

    def spy(context, n=1, guidance=None, generator=None):
        calls.append(context.batch_size)
        segments.append(original(context, n, guidance, generator))
        return segments[-1]

    low.sample = spy
    plan = hierarchical_planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    h = hierarchical_planner.high.horizon
    assert calls == [3 * (h - 1)]
    seg = segments[0].observations.view(3, h - 1, low.horizon, -1)
    k = low.horizon - 1
    assert plan.observations.shape[1] == (h - 1) * k + 1
    for j in range(h - 1):  # segment j fills plan points j*k .. (j+1)*k: no gap, no repeated seam point
        torch.testing.assert_close(plan.observations[:, j * k:(j + 1) * k + 1], seg[:, j], rtol=0, atol=0)
        torch.testing.assert_close(plan.observations[:, j * k], plan.subgoals[:, j], rtol=0, atol=0)
    torch.testing.assert_close(plan.observations[:, -1], plan.subgoals[:, -1], rtol=0, atol=0)


def _low(module, horizon: int) -> Diffuser:
    torch.manual_seed(0)
    return Diffuser(module.normalizer, horizon, goal_dims=(0, 1, 2, 3), value_head=False,
                    denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]}, num_train_timesteps=20)


def test_jump_one_reduces_to_the_high_level_diffuser(tiny_module, obs_batch):
    module, dm = tiny_module  # a plain Diffuser serves as the high level, at stride 1
    high = module.to_planner(dm.task, 1, num_inference_steps=5)
    low = _low(module, 2).to_planner(dm.task, 1, goal_dims=[0, 1, 2, 3], num_inference_steps=3)
    hd = HierarchicalPlanner(dm.task, high=high, low=low)
    a = hd.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    b = high.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.observations, b.observations, atol=1e-5, rtol=1e-5)


def test_single_segment_is_one_low_level_plan(tiny_hierarchical, obs_batch):
    module, dm = tiny_hierarchical
    two = Diffuser(module.high.normalizer, 2, goal_dims=(0, 1), value_head=False,
                   denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]}, num_train_timesteps=20)
    high = two.to_planner(dm.task, 3, num_inference_steps=3)
    low = module.low.to_planner(dm.task, 1, goal_dims=[0, 1, 2, 3], num_inference_steps=3)
    hd = HierarchicalPlanner(dm.task, high=high, low=low)
    goal = torch.tensor([[-1.0, 1.0]]).expand(3, 2)
    a = hd.plan(obs_batch, goal=goal, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    x = torch.as_tensor(obs_batch, dtype=torch.float32)
    top = high.sample(PlanContext(obs=x, goal=goal), 1, None, g)
    b = low.sample(PlanContext(obs=x, goal=top.observations[:, -1]), 1, None, g)
    assert a.observations.shape[1] == 4
    torch.testing.assert_close(a.observations, b.observations)


def test_mismatched_levels_fail_clearly(tiny_hierarchical):
    module, dm = tiny_hierarchical
    high = module.high.to_planner(dm.task, 5)
    low = module.low.to_planner(dm.task, 1, goal_dims=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="must equal the low level's span"):
        HierarchicalPlanner(dm.task, high=high, low=low)


def test_a_strided_low_level_spans_the_same_jump(tiny_hierarchical, obs_batch):
    module, dm = tiny_hierarchical  # jump 3 -> a low level with one plan point every 3 steps (2 points)
    high = module.high.to_planner(dm.task, 3, num_inference_steps=3)
    low = _low(module.high, 2).to_planner(dm.task, 3, goal_dims=[0, 1, 2, 3], num_inference_steps=3)
    plan = HierarchicalPlanner(dm.task, high=high, low=low).plan(obs_batch, generator=torch.Generator().manual_seed(0))
    assert plan.stride == 3 and plan.observations.shape[1] == high.horizon
    torch.testing.assert_close(plan.observations, plan.subgoals, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("low_stride", [0, 2])
def test_low_stride_must_divide_the_jump(tiny_hierarchical, low_stride):
    from diffplan.algorithms.hierarchical import HierarchicalDiffuser

    module, _ = tiny_hierarchical
    with pytest.raises(ValueError, match="must be a positive divisor of jump=3"):
        HierarchicalDiffuser(module.high.normalizer, 4, jump=3, low_stride=low_stride)
