"""Objectives in environment units: values, gradients against finite differences, the JSON form, task dims."""

from __future__ import annotations

import pytest
import torch

from diffplan.io import save_module
from diffplan.maze import CorridorDistance, in_free_cell
from diffplan.nn.critic import StateCritic
from diffplan.objectives import (
    AvoidBox,
    AvoidDisc,
    Critic,
    MazeWalls,
    NearPath,
    Reach,
    Speed,
    WeightedSum,
    avoid_terms,
    objective_from_spec,
)
from diffplan.tasks import load_task


def plan_of(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"observations": obs, "actions": torch.zeros(*obs.shape[:2], 2, dtype=obs.dtype)}


def random_obs(b: int = 3, h: int = 5, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, h, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype)


UMAZE_MAP = load_task("pointmaze-umaze").maze_map


class MeanState(torch.nn.Module):
    """A toy critic: a linear score of the mean planned state."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.25]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(obs).mean(1) @ self.w.to(obs.dtype)


OBJECTIVES = {
    "reach_final": lambda: Reach([0.5, -0.2], [0, 1], radius=0.1),
    "reach_any": lambda: Reach([0.5, -0.2], [0, 1], at="any"),
    "reach_all": lambda: Reach([0.5, -0.2], [0, 1], radius=0.1, at="all"),
    "reach_corridors": lambda: Reach([-1.0, 1.0], [0, 1], at="all", corridors=CorridorDistance(UMAZE_MAP)),
    "avoid_box": lambda: AvoidBox([-0.5, -0.5], [0.5, 0.7], [0, 1], margin=0.1, sharpness=3.0),
    "avoid_disc": lambda: AvoidDisc([0.2, 0.1], 0.8, [0, 1], sharpness=3.0),
    "speed_forward": lambda: Speed(1.5, [2]),
    "speed_norm": lambda: Speed(1.0, [2, 3]),
    "near_path": lambda: NearPath([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], [0, 1]),
    "critic": lambda: Critic(MeanState()),
    "maze_walls": lambda: MazeWalls([[1, 1, 1], [1, 0, 1], [0, 0, 1]], [0, 1], sharpness=3.0),
    "sum": lambda: WeightedSum([Reach([1.0, 1.0], [0, 1]), Speed(0.5, [2, 3])], [2.0, -0.5]),
}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_gradients_match_finite_differences(name):
    objective = OBJECTIVES[name]().double()
    obs = random_obs().requires_grad_(True)
    assert objective(plan_of(obs)).shape == (3,)
    assert torch.autograd.gradcheck(lambda o: objective(plan_of(o)), (obs,))


def test_reach_is_higher_nearer_the_target_and_flat_inside_the_radius():
    reach = Reach([1.0, 2.0], [0, 1], radius=0.5, sharpness=50.0)
    obs = torch.zeros(4, 3, 4)
    obs[:, -1, :2] = torch.tensor([[1.0, 2.0], [1.2, 2.0], [2.0, 2.0], [4.0, 2.0]])
    values = reach(plan_of(obs)).tolist()  # floats: pytest.approx does not take 0-d tensors in every version
    assert values[0] == pytest.approx(values[1], abs=1e-3) and values[0] == pytest.approx(0.0, abs=1e-3)
    assert values[1] > values[2] > values[3]
    assert values[3] == pytest.approx(-2.5, abs=1e-3)  # distance beyond the radius
    obs[3, 1, :2] = torch.tensor([1.0, 2.0])  # passes the target mid-plan
    assert Reach([1.0, 2.0], [0, 1], at="any", sharpness=50.0)(plan_of(obs))[3] > -0.1
    assert reach(plan_of(obs))[3].item() == values[3]  # "final" only looks at the last point
    every = Reach([1.0, 2.0], [0, 1], radius=0.5, at="all", sharpness=50.0)
    early, late = torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)
    early[0, 1:, :2], late[0, 3:, :2] = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    assert every(plan_of(early))[0] > every(plan_of(late))[0]  # "all" rewards getting there early and staying


def test_reach_to_the_episode_goal_scores_each_row_against_its_own_goal():
    obs = random_obs(dtype=torch.float32)
    goals = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    to_goal = Reach("goal", [0, 1], radius=0.1)
    values = to_goal({**plan_of(obs), "goal": goals})
    for row, goal in enumerate(goals.tolist()):
        assert values[row].item() == pytest.approx(Reach(goal, [0, 1], radius=0.1)(plan_of(obs))[row].item(), abs=1e-6)
    built = objective_from_spec({"type": "reach", "target": "goal"}, load_task("pointmaze-umaze"))
    assert built.episode_goal and built.dims == [0, 1]
    with pytest.raises(ValueError, match="needs the episode's goal, and this plan has none"):
        to_goal(plan_of(obs))


@pytest.mark.parametrize("region", [AvoidBox([0.0, 0.0], [1.0, 1.0], [0, 1], sharpness=50.0),
                                    AvoidDisc([0.5, 0.5], 0.5, [0, 1], sharpness=50.0)])
def test_avoid_penalizes_points_inside_the_region_by_their_depth(region):
    obs = torch.zeros(3, 2, 4)
    obs[0, :, :2] = torch.tensor([3.0, 3.0])  # outside
    obs[1, 0, :2] = torch.tensor([0.5, 0.9])  # shallow inside
    obs[1, 1, :2] = torch.tensor([3.0, 3.0])
    obs[2, :, :2] = torch.tensor([0.5, 0.5])  # both points deep inside
    values = region(plan_of(obs))
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 > values[1] > values[2]
    assert values[2] == pytest.approx(-1.0, abs=1e-3)  # two points 0.5 deep, summed
    assert region.inside(plan_of(obs)).tolist() == [False, True, True]


def test_avoid_with_between_sees_a_sparse_plan_stepping_over_the_box():
    spec = {"type": "avoid_box", "lo": [-0.2, -0.2], "hi": [0.2, 0.2]}
    over = plan_of(torch.tensor([[[-1.0, 0.0, 0, 0], [1.0, 0.0, 0, 0]]], dtype=torch.float64))  # either side
    past = plan_of(torch.tensor([[[-1.0, 1.0, 0, 0], [1.0, 1.0, 0, 0]]], dtype=torch.float64))  # segment misses it
    task = load_task("pointmaze-umaze")
    sparse, dense = objective_from_spec(spec, task), objective_from_spec({**spec, "between": 9}, task)
    assert not sparse.inside(over) and sparse(over).item() > -1e-3
    assert dense.inside(over) and dense(over).item() < -0.01
    assert not dense.inside(past) and dense(past).item() > -1e-3
    # a plan already dense along the segment scores the same with or without added points (per plan point)
    line = torch.linspace(-1, 1, 21, dtype=torch.float64)
    fine = plan_of(torch.stack([line, torch.zeros_like(line), 0 * line, 0 * line], -1)[None])
    torch.testing.assert_close(dense(fine), sparse(fine), rtol=0.15, atol=1e-3)


def test_gradient_ascent_on_avoid_pushes_a_plan_out_of_the_box():
    box = AvoidBox([0.0, 0.0], [1.0, 1.0], [0, 1], margin=0.05)
    obs = torch.zeros(2, 6, 4)
    obs[..., :2] = torch.rand(2, 6, 2, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    assert box.inside(plan_of(obs)).all()
    for _ in range(100):
        obs.requires_grad_(True)
        (grad,) = torch.autograd.grad(box(plan_of(obs)).sum(), obs)
        obs = (obs + 0.05 * grad).detach()
    assert not box.inside(plan_of(obs)).any()
    assert torch.equal(obs[..., 2:], torch.zeros(2, 6, 2))  # dims the region does not name never move


def test_maze_walls_are_inside_exactly_the_wall_cells_and_guidance_leaves_them():
    task = load_task("pointmaze-large")
    walls = objective_from_spec({"type": "maze_walls", "margin": 0.0}, task)
    xy = torch.rand(1, 4000, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([12.0, 9.0])
    xy = xy - torch.tensor([6.0, 4.5])
    in_wall = walls.depth(xy)[0] > 0
    assert torch.equal(in_wall, torch.as_tensor(~in_free_cell(task.maze_map, xy[0].numpy())))
    assert avoid_terms(walls) == []  # a feasibility term, not a region whose entry is a violation
    obs = torch.zeros(1, 50, 4)
    obs[..., :2] = xy[:, in_wall][:, :50]  # points in walls, a little inside
    inside = walls.depth(obs[..., :2]) > 0
    for _ in range(200):
        obs.requires_grad_(True)
        (grad,) = torch.autograd.grad(walls(plan_of(obs)).sum(), obs)
        obs = (obs + 0.02 * grad).detach()
    assert (walls.depth(obs[..., :2])[inside] <= 0).float().mean() > 0.9  # nearly all pushed out into a corridor


def test_maze_walls_with_between_sees_a_plan_jumping_across_a_wall():
    task = load_task("pointmaze-umaze")  # free cells (1, 1) and (3, 1) lie on either side of the wall row 2
    plan = torch.zeros(1, 2, 4)
    plan[0, :, :2] = torch.tensor([[-1.0, 1.0], [-1.0, -1.0]])  # two points in corridors, the segment through the wall
    spec = {"type": "maze_walls", "margin": 0.0}
    pointwise, dense = objective_from_spec(spec, task), objective_from_spec({**spec, "between": 9}, task)
    assert pointwise(plan_of(plan)).item() > -0.01  # no point in a wall: nearly free
    assert dense(plan_of(plan)).item() < pointwise(plan_of(plan)).item() - 0.1  # the jump costs
    stay = plan.clone()
    stay[0, 1, :2] = torch.tensor([0.0, 1.0])  # along the corridor instead
    assert dense(plan_of(stay)).item() == pytest.approx(pointwise(plan_of(stay)).item(), abs=1e-3)


def test_reach_through_the_corridors_pulls_round_the_wall_where_the_straight_reach_pulls_into_it():
    task = load_task("pointmaze-umaze")  # lower arm (y = -1) and upper arm (y = 1), the wall row y in (-0.5, 0.5)
    spec = {"type": "reach", "target": [-1.0, 1.0], "at": "all"}
    straight, corridors = objective_from_spec(spec, task), objective_from_spec({**spec, "metric": "corridors"}, task)
    obs = torch.zeros(1, 1, 4)
    obs[0, 0, :2] = torch.tensor([-1.0, -1.0])  # the lower arm's end
    obs.requires_grad_(True)
    pulls = {}
    for name, objective in (("straight", straight), ("corridors", corridors)):
        (pulls[name],) = torch.autograd.grad(objective(plan_of(obs)).sum(), obs)
    assert pulls["straight"][0, 0, 1] > 0.9  # straight up, into the wall
    assert pulls["corridors"][0, 0, 0] > 0.9 and abs(pulls["corridors"][0, 0, 1]) < 1e-6  # along the arm
    assert corridors(plan_of(obs)).item() == pytest.approx(-6.0, abs=0.01)
    with pytest.raises(ValueError, match="metric \"corridors\" needs a maze task"):
        objective_from_spec({**spec, "metric": "corridors", "dims": [0, 1]}, load_task("hopper-medium"))


def test_maze_walls_exact_depth_in_chunks_equals_all_at_once(monkeypatch):
    from diffplan import objectives

    walls = objective_from_spec({"type": "maze_walls", "between": 2}, load_task("pointmaze-large"))
    xy = torch.rand(7, 30, 2, generator=torch.Generator().manual_seed(0)) * 8 - 4
    whole = walls.exact_depth(xy)
    monkeypatch.setattr(objectives, "_CHUNK_ELEMENTS", 1)  # one plan per chunk
    assert torch.equal(whole, walls.exact_depth(xy))


def test_maze_walls_table_is_within_half_a_node_spacing_of_the_exact_depth_and_pulls_back_from_outside_the_map():
    from diffplan import objectives

    walls = objective_from_spec({"type": "maze_walls", "margin": 0.0}, load_task("pointmaze-large"))
    xy = (torch.rand(1, 5000, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1) * torch.tensor([6.0, 4.5])
    table, exact = walls.depth(xy), walls.exact_depth(xy)
    assert torch.equal(table > 0, exact > 0)  # cell edges are grid lines: inside / outside a wall is exact
    assert (table - exact).abs().max() < 0.5 / objectives._TABLE_NODES_PER_CELL  # 1.6 cm in PointMaze
    far = torch.tensor([[[9.0, 0.3], [-2.0, -7.0]]], requires_grad=True)  # beyond the right / bottom edge
    assert torch.allclose(walls.depth(far), walls.exact_depth(far.detach()), atol=0.5)
    (grad,) = torch.autograd.grad(walls.depth(far).sum(), far)
    assert grad[0, 0, 0] > 0.9 and grad[0, 1, 1] < -0.9  # depth grows away from the map: guidance pulls back in


def test_speed_and_path_errors_read_as_mean_squared_errors():
    obs = torch.zeros(1, 4, 4)
    obs[0, :, 2] = torch.tensor([1.0, 2.0, 3.0, 2.0])
    assert Speed(2.0, [2])(plan_of(obs)).item() == pytest.approx(-(1 + 0 + 1 + 0) / 4)
    obs[0, :, 3] = 0.0
    assert Speed(-2.0, [2, 3])(plan_of(obs)).item() == pytest.approx(-(9 + 16 + 25 + 16) / 4)  # a norm is >= 0
    path = NearPath([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]], [0, 1])
    obs[0, :, :2] = torch.tensor([[1.0, 0.0], [2.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    assert path(plan_of(obs)).item() == pytest.approx(-(0 + 0 + 1 + 2) / 4, abs=1e-6)


def test_spec_builds_weighted_sums_with_the_task_cards_dims():
    maze, hopper = load_task("pointmaze-umaze"), load_task("hopper-medium")
    spec = [{"type": "reach", "target": [1.0, 2.0], "weight": 2.0}, {"type": "speed", "target": 0.5}]
    objective = objective_from_spec(spec, maze)
    obs = random_obs(dtype=torch.float32)
    expected = 2.0 * Reach([1.0, 2.0], [0, 1])(plan_of(obs)) + Speed(0.5, [2, 3])(plan_of(obs))
    torch.testing.assert_close(objective(plan_of(obs)), expected)
    assert objective_from_spec({"type": "speed", "target": 1.0}, hopper).dims == [5]
    assert objective_from_spec({"type": "avoid_box", "lo": [0.0], "hi": [1.0], "dims": [3]}, hopper).dims == [3]
    assert isinstance(objective_from_spec({"type": "reach", "target": [0, 0]}, maze), Reach)  # weight 1: no sum


def test_critic_spec_loads_a_saved_module(tmp_path):
    critic = StateCritic(4, hidden=8)
    save_module(critic, tmp_path / "critic")
    objective = objective_from_spec({"type": "critic", "path": str(tmp_path / "critic")}, load_task("hopper-medium"))
    obs = random_obs(dtype=torch.float32)
    torch.testing.assert_close(objective(plan_of(obs)), critic(obs))


@pytest.mark.parametrize("spec, match", [
    ({"type": "teleport"}, "\"type\" one of"),
    ("reach", "\"type\" one of"),
    ({"type": "reach"}, "missing \\['target'\\]"),
    ({"type": "reach", "target": [0, 0], "tolerance": 1}, "unknown \\['tolerance'\\]"),
    ({"type": "reach", "target": [0, 0, 0]}, "3 coordinates but the position dims are \\[0, 1\\]"),
    ({"type": "reach", "target": "home"}, "'target' must be finite numbers or \"goal\""),
    ({"type": "avoid_box", "lo": [1, 1], "hi": [0, 2]}, "'lo' must be below 'hi'"),
    ({"type": "avoid_disc", "center": [0, 0], "radius": "big"}, "'radius' must be finite numbers"),
    ({"type": "near_path", "points": [[0, 0]]}, "K >= 2 points"),
    ({"type": "maze_walls", "lo": [0, 0]}, "unknown \\['lo'\\]"),
    ({"type": "avoid_box", "lo": [0, 0], "hi": [1, 1], "between": 2.5}, "'between' is a whole number"),
    ({"type": "avoid_box", "lo": [0, 0], "hi": [1, 1], "between": -1}, "'between' is a whole number"),
    ([], "at least one entry"),
])
def test_bad_objective_specs_fail_in_one_line(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        objective_from_spec(spec, load_task("pointmaze-umaze"))
    assert "\n" not in str(err.value)


def test_objectives_that_need_dims_the_card_lacks_ask_for_them():
    with pytest.raises(ValueError, match="needs position dims: task 'hopper-medium' names none"):
        objective_from_spec({"type": "reach", "target": [1.0]}, load_task("hopper-medium"))
