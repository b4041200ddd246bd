"""Evaluation protocols (random start/goal pairs, the controller's share) and the violation rate."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from diffplan.data.recipes.waypoint_controller import WaypointController
from diffplan.environments import make_eval_env
from diffplan.evaluation.protocols import controller_returns, free_cells, random_pair, share_of
from diffplan.evaluation.rollout import entered, evaluate, violation_regions
from diffplan.maze import xy_to_cell
from diffplan.planner import Plan, PlanContext, Planner
from diffplan.tasks import load_task


class ControllerPlanner(Planner):
    """The waypoint controller behind the Planner API: one controller per env, a one-step plan every step."""

    def __init__(self, task: Any):
        super().__init__(task, replan_every=1)
        self.maze = make_eval_env(task).unwrapped.maze
        self.jitter = task.dataset.recipe_params["waypoint_jitter"]
        self.controllers: list[WaypointController] = []

    @property
    def obs_dim(self) -> int:
        return 4

    def reset(self, seed: int | None = None, envs: Any = None) -> None:
        super().reset(seed, envs)
        self.controllers = []

    def sample(self, context: PlanContext, n: int = 1, guidance: Any = None,
               generator: torch.Generator | None = None) -> Plan:
        x, g = context.obs.numpy().astype(np.float64), context.goal.numpy().astype(np.float64)
        if len(self.controllers) != len(x):
            rng = np.random.default_rng(0)
            self.controllers = [WaypointController(self.maze, rng, waypoint_jitter=self.jitter) for _ in x]
        actions = np.stack([c({"achieved_goal": o[:2], "desired_goal": goal, "observation": o})
                            for c, o, goal in zip(self.controllers, x, g)])
        return Plan(observations=context.obs[:, None], actions=torch.as_tensor(actions)[:, None], stride=1)


def without_jitter(task):
    """The task with a deterministic controller (no waypoint jitter): its return depends on the episode alone."""
    params = {**task.dataset.recipe_params, "waypoint_jitter": 0.0}
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, recipe_params=params))


def test_random_pairs_are_distinct_free_cells_set_by_the_reset_seed(umaze):
    pairs = [random_pair(umaze.maze_map, seed) for seed in range(40)]
    assert all(start != goal and {start, goal} <= set(free_cells(umaze.maze_map)) for start, goal in pairs)
    assert pairs == [random_pair(umaze.maze_map, seed) for seed in range(40)]
    assert len(set(pairs)) > 10  # not one fixed pair
    env = make_eval_env(umaze, protocol="random_pairs")
    for seed in (3, 4):
        obs, info = env.reset(seed=seed)
        start, goal = random_pair(umaze.maze_map, seed)
        assert tuple(info["reset_cell"]) == start and tuple(info["goal_cell"]) == goal
        assert tuple(int(v) for v in xy_to_cell(umaze.maze_map, obs["achieved_goal"])) == start
        assert tuple(int(v) for v in xy_to_cell(umaze.maze_map, obs["desired_goal"])) == goal
        again, _ = env.reset(seed=seed)
        assert all(np.array_equal(obs[k], again[k]) for k in obs)


def test_unknown_protocols_and_mazeless_random_pairs_are_refused(umaze):
    with pytest.raises(ValueError, match="protocol must be one of"):
        make_eval_env(umaze, protocol="random")
    with pytest.raises(ValueError, match="needs a maze task"):
        controller_returns(load_task("hopper-medium"), [0])


def test_the_controller_scores_100_percent_of_itself_on_the_same_pairs(umaze):
    task = without_jitter(umaze)
    result = evaluate(ControllerPlanner(task), task, episodes=3, seed=10, num_envs=3, progress=False,
                      protocol="random_pairs")
    assert result.protocol == "random_pairs" and (result.controller_returns > 0).all()
    np.testing.assert_allclose(result.returns, result.controller_returns)  # same pairs, same seeds, same episodes
    assert result.summary()["controller_share"] == pytest.approx(100.0)
    # another episode set is another set of pairs: the controller's returns change with them
    assert not np.array_equal(controller_returns(task, [10, 11, 12]), controller_returns(task, [20, 21, 22]))


def test_share_is_a_ratio_of_paired_means_with_a_paired_standard_error():
    share, se = share_of(np.array([50.0, 100.0]), np.array([100.0, 200.0]))
    assert (share, se) == (50.0, 0.0)  # every episode at exactly half the controller's return
    share, se = share_of(np.array([100.0, 100.0]), np.array([100.0, 300.0]))
    assert share == 50.0 and se > 0


def test_entered_counts_only_the_states_of_the_episode(umaze):
    regions = violation_regions({"type": "avoid_box", "lo": [0.0, 0.0], "hi": [1.0, 1.0]}, umaze)
    path = np.zeros((3, 5, 4))
    path[:, :, :2] = -1.0
    path[0, 2, :2] = 0.5  # inside at step 2
    path[1, 4, :2] = 0.5  # inside at step 4, after its episode ended (length 3)
    path[2, 3, :2] = 1.5  # outside
    assert entered(regions, path, np.array([4, 3, 4])).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="avoid_box"):
        violation_regions({"type": "reach", "target": [0.0, 0.0]}, umaze)


def test_evaluate_reports_the_share_of_episodes_whose_path_enters_the_region(umaze):
    task = without_jitter(umaze)
    # the cell (1, 1) holds the evaluation goal: every episode gets there
    goal_cell = [{"type": "reach", "target": [0.0, 0.0]}, {"type": "avoid_box", "lo": [-1.5, 0.5], "hi": [-0.5, 1.5]}]
    result = evaluate(ControllerPlanner(task), task, episodes=2, seed=0, num_envs=2, progress=False,
                      violation=goal_cell)
    assert result.violations.tolist() == [True, True] and result.summary()["violation"] == 1.0
    # the bottom-left cell (3, 1) is a dead end off every route to the goal: entered by the episodes that start there
    dead_end = {"type": "avoid_box", "lo": [-1.5, -1.5], "hi": [-0.5, -0.5]}
    result = evaluate(ControllerPlanner(task), task, episodes=8, seed=4, num_envs=4, progress=False,
                      violation=dead_end)
    starts = np.array([xy_to_cell(task.maze_map, p[0, :2]) for p in result.paths])
    np.testing.assert_array_equal(result.violations, (starts == [3, 1]).all(axis=1))
    assert 0 < result.summary()["violation"] < 1  # seeds 4..11 start there twice
    assert np.isnan(evaluate(ControllerPlanner(task), task, episodes=1, progress=False).summary()["violation"])
