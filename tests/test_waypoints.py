"""Waypoints: a goal-conditioned planner led round regions closed at test time by a waypoint in place of its goal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffplan.guidance.waypoints import Waypoints
from diffplan.maze import cell_hops, open_cells
from diffplan.tasks import load_task

LARGE_BOXES = {"box1": ([0.0, -0.5], [1.0, 0.5]), "box2": ([4.0, -0.5], [5.0, 0.5])}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("box", sorted(LARGE_BOXES))
def test_an_agent_heading_for_each_waypoint_goes_round_the_box_to_the_goal(box):
    """From every free cell of PointMaze large, an agent that takes the shortest route through the whole maze
    (box included) to its current waypoint never enters the box and reaches the goal cell (7, 9)."""
    maze = load_task("pointmaze-large").maze_map
    cols = len(maze[0])
    waypoints = Waypoints(maze, [LARGE_BOXES[box]], positions=[0, 1])
    free = open_cells(maze)
    hops = cell_hops(free)
    shut = set(np.flatnonzero(free & ~open_cells(maze, [LARGE_BOXES[box]])).tolist())
    goal = 7 * cols + 9
    detoured = 0
    for start in np.flatnonzero(free):
        if start in shut:
            continue
        cell, path = int(start), [int(start)]
        while cell != goal and len(path) < 100:
            target = int(waypoints.waypoint_cells(np.array([cell]), np.array([goal]))[0])
            cell = next(n for n in waypoints.neighbours[cell] + sorted(shut & set(_adjacent(cell, cols)))
                        if hops[n, target] == hops[cell, target] - 1)  # a shortest open step, closed cells allowed
            path.append(cell)
        assert cell == goal, f"from cell {divmod(int(start), cols)} the agent did not arrive: {path}"
        assert not shut & set(path), f"from cell {divmod(int(start), cols)} the agent entered the box: {path}"
        detoured += len(path) - 1 > hops[start, goal]
    assert detoured > 0  # the box is on the usual route of some starts, which then go the long way


def _adjacent(cell: int, cols: int) -> list[int]:
    return [cell - 1, cell + 1, cell - cols, cell + cols]


def test_the_plan_is_conditioned_on_the_waypoint_in_place_of_the_goal(planner, obs_batch):
    """Umaze, the cell (2, 3) closed: from inside it (row 1) the waypoint is the free neighbour toward the goal;
    where the goal is safe (row 2) or has no way round the box (row 0) the goal is kept."""
    goal = torch.tensor([[-1.0, 1.0]]).expand(3, 2)
    spec = {"method": "waypoints", "closed": [{"lo": [0.5, -0.5], "hi": [1.5, 0.5]}]}
    steered = planner.plan(obs_batch, goal=goal, guidance=spec, generator=gen(1))
    expected = goal.clone()
    expected[1] = torch.tensor([1.0, 1.0])  # the centre of cell (1, 3)
    direct = planner.plan(obs_batch, goal=expected, generator=gen(1))
    torch.testing.assert_close(steered.observations, direct.observations, rtol=0, atol=0)
    assert not torch.equal(direct.observations, planner.plan(obs_batch, goal=goal, generator=gen(1)).observations)


def test_the_context_keeps_the_final_goal_beside_the_waypoint(diffuser_planner, obs_batch):
    from diffplan.guidance.waypoints import from_spec
    from diffplan.planner import PlanContext

    goal = torch.tensor([[-1.0, 1.0]]).expand(3, 2)
    spec = {"method": "waypoints", "closed": [{"lo": [0.5, -0.5], "hi": [1.5, 0.5]}]}
    context = from_spec(spec, diffuser_planner).condition(PlanContext(obs=torch.tensor(obs_batch).float(), goal=goal))
    assert not torch.equal(context.goal, goal)  # row 1 heads for a waypoint
    assert torch.equal(context.final_goal, goal)
    again = from_spec(spec, diffuser_planner).condition(context)  # a second waypoint stage keeps the task's goal
    assert torch.equal(again.final_goal, goal)


def test_waypoints_compose_with_select_which_scores_toward_the_waypoint(diffuser_planner, obs_batch):
    goal = torch.tensor([[-1.0, 1.0]]).expand(3, 2)
    select = {"method": "select", "n": 4, "objective": {"type": "reach", "target": "goal"}}
    spec = {"method": "waypoints", "closed": [{"lo": [0.5, -0.5], "hi": [1.5, 0.5]}], "guidance": select}
    expected = goal.clone()
    expected[1] = torch.tensor([1.0, 1.0])
    steered = diffuser_planner.plan(obs_batch, goal=goal, guidance=spec, generator=gen(2))
    direct = diffuser_planner.plan(obs_batch, goal=expected, guidance=select, generator=gen(2))
    torch.testing.assert_close(steered.observations, direct.observations, rtol=0, atol=0)


def test_waypoints_spec_round_trips_through_a_planner_folder(diffuser_planner, obs_batch, tmp_path):
    spec = {"method": "waypoints", "closed": [{"lo": [0.5, -0.5], "hi": [1.5, 0.5]}], "margin": 2}
    diffuser_planner.save_pretrained(tmp_path / "p", guidance=spec)
    loaded = type(diffuser_planner).from_pretrained(tmp_path / "p")
    assert isinstance(loaded.guidance, Waypoints) and loaded.guidance.margin == 2
    goal = torch.tensor([-1.0, 1.0])
    ours = diffuser_planner.plan(obs_batch, goal=goal, guidance=spec, generator=gen(3))
    torch.testing.assert_close(loaded.plan(obs_batch, goal=goal, generator=gen(3)).observations, ours.observations,
                               rtol=0, atol=0)


@pytest.mark.parametrize("spec, match", [
    ({"method": "waypoints"}, "got closed=None"),
    ({"method": "waypoints", "closed": []}, "may be empty with \"ahead\""),
    ({"method": "waypoints", "ahead": 0}, "'ahead' must be"),
    ({"method": "waypoints", "closed": [{"lo": [0, 0]}]}, "a list of boxes"),
    ({"method": "waypoints", "closed": [{"lo": [0, 0], "hi": [1, 1]}], "boxes": 1}, "unknown \\['boxes'\\]"),
    ({"method": "waypoints", "closed": [{"lo": [0, 0], "hi": [1, 1]}], "margin": -1}, "'margin' must be"),
    ({"method": "waypoints", "closed": [{"lo": [0, 0], "hi": [1, 1]}]}, "this plan has no goal"),
])
def test_bad_waypoints_specs_fail_in_one_line(decision_diffuser_planner, diffuser_planner, obs_batch, spec, match):
    planner = decision_diffuser_planner if match == "this plan has no goal" else diffuser_planner
    obs = obs_batch if planner is diffuser_planner else np.zeros((3, planner.obs_dim))
    with pytest.raises(ValueError, match=match) as err:
        planner.plan(obs, guidance=spec)
    assert "\n" not in str(err.value)


def test_with_ahead_the_waypoint_is_that_many_cells_along_the_route_until_the_goal_is_that_near():
    maze = load_task("pointmaze-medium").maze_map
    cols = len(maze[0])
    hops = cell_hops(open_cells(maze))
    waypoints = Waypoints(maze, [], positions=[0, 1], ahead=3)
    goal = 6 * cols + 6
    for start in np.flatnonzero(open_cells(maze)):
        cell = int(waypoints.waypoint_cells(np.array([start]), np.array([goal]))[0])
        if hops[start, goal] <= 3:
            assert cell == goal
        else:  # 3 moves from the start and on a shortest route to the goal
            assert hops[start, cell] == 3 and hops[cell, goal] == hops[start, goal] - 3
