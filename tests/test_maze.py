"""Maze geometry: distances through the corridors."""

import pytest
import torch

from diffplan.maze import CorridorDistance
from diffplan.tasks import load_task

UMAZE = load_task("pointmaze-umaze").maze_map  # free: row 1 (cols 1-3), (2, 3), row 3 (cols 1-3)
GOAL = torch.tensor([-1.0, 1.0])  # cell (1, 1), the upper arm's end


def test_corridor_distance_goes_round_the_inner_wall_not_through_it():
    corridors = CorridorDistance(UMAZE)
    start = torch.tensor([-1.0, -1.0])  # cell (3, 1), the lower arm's end: 2 m straight up, through the wall
    assert corridors(start, GOAL).item() == pytest.approx(6.0, abs=1e-3)  # right, up the side, left: six cells
    point = start.clone().requires_grad_(True)
    for _ in range(100):  # descend the corridor distance: the point must leave along the lower arm
        (grad,) = torch.autograd.grad(corridors(point, GOAL), point)
        point = (point - 0.05 * grad).detach().requires_grad_(True)
        assert not (-0.5 < point[1].item() < 0.5 and point[0].item() < 0.5), "walked into the inner wall"
    assert corridors(point, GOAL).item() < 1.0


@pytest.mark.parametrize("point", [[-1.2, 1.3], [0.2, 0.8], [1.0, 1.0]])
def test_corridor_distance_is_the_straight_distance_within_sight(point):
    """Same cell, an adjacent free cell, or a straight corridor: the straight line stays in the free cells."""
    p = torch.tensor(point)
    assert CorridorDistance(UMAZE)(p, GOAL).item() == pytest.approx((p - GOAL).norm().item(), abs=1e-3)


def test_corridor_distance_batches_points_against_per_row_targets_and_falls_back_off_the_map():
    corridors = CorridorDistance(UMAZE)
    points = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]], [[1.0, -1.0], [9.0, 9.0]]])  # (B=2, H=2, 2)
    targets = torch.tensor([[[-1.0, 1.0]], [[-1.0, -1.0]]])  # (B, 1, 2)
    d = corridors(points, targets)
    assert d.shape == (2, 2)
    assert d[0].tolist() == pytest.approx([6.0, 2.0], abs=1e-3) and d[1, 0].item() == pytest.approx(2.0, abs=1e-3)
    assert torch.isfinite(d).all()  # (9, 9) lies off the map: clamped to the corner wall cell, which has a route


def test_a_closed_box_reroutes_the_corridor_distance_round_it():
    large = load_task("pointmaze-large").maze_map
    box = ([0.0, -0.5], [1.0, 0.5])  # cell (4, 6): the passage from the left half down to row 5
    goal = torch.tensor([3.5, -3.0])  # cell (7, 9)
    above = torch.tensor([0.5, 1.0], requires_grad=True)  # cell (3, 6), just above the box
    open_, closed = CorridorDistance(large), CorridorDistance(large, [box])
    assert closed(above, goal).item() > open_(above, goal).item() + 4  # the detour over the top is longer
    (through,) = torch.autograd.grad(open_(above, goal), above)
    (round_,) = torch.autograd.grad(closed(above, goal), above)
    assert through[1] > 0.9  # descending the open distance moves down, into the box
    assert round_[1] <= 0.0  # the closed one never pulls down into it
