"""The PointMaze recipe: determinism, episode structure, reference scores, all-or-nothing writes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from diffplan.data.recipes import generate_dataset
from diffplan.data.recipes.pointmaze import collect
from diffplan.data.writer import dataset_exists
from diffplan.environments import make_eval_env
from diffplan.maze import xy_to_cell


def test_collect_is_deterministic_under_a_seed(umaze):
    a, b = collect(umaze, 1500, seed=3, progress=False), collect(umaze, 1500, seed=3, progress=False)
    c = collect(umaze, 1500, seed=4, progress=False)
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_array_equal(ea.observations["observation"], eb.observations["observation"])
    assert not np.array_equal(a[0].actions[:50], c[0].actions[:50])


def test_episodes_end_on_success_and_chain_without_reset(umaze):
    episodes = collect(umaze, 2000, seed=0, progress=False)
    assert sum(len(e.actions) for e in episodes) == 2000
    for prev, nxt in itertools.pairwise(episodes):
        assert prev.infos["success"][-1] and prev.truncations[-1] and not prev.terminations.any()
        # the ball is never reset: an episode starts where the previous one ended
        np.testing.assert_array_equal(prev.observations["observation"][-1], nxt.observations["observation"][0])
    actions = np.concatenate([e.actions for e in episodes])
    assert actions.dtype == np.float32 and np.abs(actions).max() <= 1.0


def test_goal_holds_keep_the_goal_after_success_then_draw_a_new_one(umaze):
    hold = 60
    episodes = collect(umaze, 3000, seed=0, hold_steps=hold, progress=False)
    assert sum(len(e.actions) for e in episodes) == 3000
    held_lengths = []
    for e, nxt in itertools.pairwise(episodes):
        goals = e.observations["desired_goal"]
        success = e.infos["success"][1:]  # the first state is the previous episode's last
        first = int(success.argmax())
        assert success[first], "every cut episode reached its goal"
        np.testing.assert_array_equal(goals[1:], np.broadcast_to(goals[1], goals[1:].shape))  # one goal, cut included
        assert not np.array_equal(nxt.observations["desired_goal"][1], goals[-1])  # the next goal is drawn at the cut
        assert np.linalg.norm(nxt.observations["desired_goal"][1] - e.observations["achieved_goal"][-1]) > 0.45
        held_lengths.append(len(success) - 1 - first)
    assert max(held_lengths) <= hold and max(held_lengths) > 0
    assert len(set(held_lengths)) > 1  # hold lengths are random


def test_negative_hold_fails_clearly(umaze):
    with pytest.raises(ValueError, match="hold_steps must be >= 0"):
        collect(umaze, 10, seed=0, hold_steps=-1, progress=False)


def test_dataset_has_reference_scores_and_loads_with_minari(tiny_dataset, umaze):
    import minari

    ds = minari.load_dataset(umaze.dataset.local_id)
    meta = ds.storage.metadata
    assert ds.total_steps == 3000
    # the noise-free controller is far above the random policy
    assert meta["ref_max_score"] > 5 * meta["ref_min_score"] + 50
    assert minari.get_normalized_score(ds, np.array([meta["ref_max_score"]]))[0] == pytest.approx(1.0)
    # the evaluation env is the single-goal map with fixed target
    assert make_eval_env(umaze).spec.max_episode_steps == 300


def test_reference_scores_match_the_task_card(umaze):
    """Minari's method (100 episodes) gives the task card's numbers (the random min exactly)."""
    from diffplan.data.recipes.pointmaze import reference_scores

    ref_min, ref_max = reference_scores(umaze, 100, seed=123)
    assert ref_min == pytest.approx(umaze.ref_min_score, abs=0.01)
    assert ref_max == pytest.approx(umaze.ref_max_score, rel=0.02)


def test_zero_steps_fails_and_writes_nothing(umaze):
    with pytest.raises(ValueError, match="--steps must be a positive"):
        generate_dataset(umaze, steps=0, dataset_id="diffplan/test/zero-v0", progress=False)
    assert not dataset_exists("diffplan/test/zero-v0")


def test_existing_dataset_is_not_overwritten_silently(tiny_dataset, umaze, monkeypatch):
    from diffplan.data.recipes import pointmaze

    collected = []
    monkeypatch.setattr(pointmaze, "collect", lambda *a, **k: collected.append(1))
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_dataset(umaze, steps=100, seed=7, progress=False, reference_episodes=1)
    assert collected == []  # refused before the collection, not after it


def test_failed_write_leaves_no_dataset(umaze, monkeypatch):
    from diffplan.data import writer

    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer.minari, "create_dataset_from_buffers", boom)
    with pytest.raises(RuntimeError):
        generate_dataset(umaze, steps=200, dataset_id="diffplan/test/broken-v0", progress=False,
                         reference_episodes=1)
    assert not dataset_exists("diffplan/test/broken-v0")


def test_xy_to_cell_matches_the_env(umaze):
    maze = make_eval_env(umaze).unwrapped.maze
    rng = np.random.default_rng(0)
    for xy in rng.uniform(-2.4, 2.4, size=(50, 2)):
        row, col = xy_to_cell(umaze.maze_map, xy)
        assert (int(row), int(col)) == tuple(int(v) for v in maze.cell_xy_to_rowcol(xy))


def test_locomotion_recipe_is_deterministic_and_uses_the_shipped_policy_format(tmp_path):
    from diffplan.data.recipes.behavior import BehaviorPolicy
    from diffplan.data.recipes.mujoco import collect, load_policy
    from diffplan.io import save_module
    from diffplan.tasks import load_task

    task = load_task("hopper-medium")
    torch.manual_seed(0)
    policy = BehaviorPolicy(11, 3, [16, 16], [-1.0] * 3, [1.0] * 3)
    save_module(policy, tmp_path / "behavior")
    loaded = load_policy(str(tmp_path / "behavior"))
    assert not any(p.suffix in (".pt", ".pkl", ".zip") for p in (tmp_path / "behavior").iterdir())
    runs = [collect(task, 1200, seed=5, policy=loaded, max_episode_steps=200, progress=False) for _ in range(2)]
    assert len(runs[0]) == len(runs[1]) > 1
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    assert sum(len(b.actions) for b in runs[0]) > 1200 - 200  # only the trailing partial episode is dropped
    assert all(np.abs(b.actions).max() <= 1.0 for b in runs[0])
    with pytest.raises(FileNotFoundError, match="train_behavior.py"):
        load_policy(str(tmp_path / "missing"))


def test_replay_schedule_rolls_out_each_snapshot_for_its_share_in_order(tmp_path):
    import json

    from diffplan.data.recipes.behavior import BehaviorPolicy
    from diffplan.data.recipes.mujoco import collect_segments, load_segments
    from diffplan.io import save_module
    from diffplan.tasks import load_task

    task = load_task("hopper-medium")
    torch.manual_seed(0)
    for name, bias in (("step-a", -1.0), ("step-b", 1.0)):  # two snapshots with opposite, saturated actions
        policy = BehaviorPolicy(11, 3, [8], [-1.0] * 3, [1.0] * 3)
        torch.nn.init.zeros_(policy.mu.weight)
        torch.nn.init.constant_(policy.mu.bias, 10.0 * bias)
        torch.nn.init.constant_(policy.log_std.bias, -20.0)
        save_module(policy, tmp_path / name)
    (tmp_path / "schedule.json").write_text(json.dumps({"segments": [
        {"policy": None, "steps": 100}, {"policy": "step-a", "steps": 150}, {"policy": "step-b", "steps": 150}]}))

    segments, replay = load_segments(str(tmp_path), steps=300)
    assert replay and [n for _, n in segments] == [100, 150, 50]  # truncated to the steps asked for
    episodes = collect_segments(task, segments, seed=3, max_episode_steps=1000, progress=False, drop_partial=False)
    actions = np.concatenate([e.actions for e in episodes])
    assert len(actions) >= 300
    a_part, b_part = actions[(actions < -0.99).all(1)], actions[(actions > 0.99).all(1)]
    assert len(a_part) >= 150 and len(b_part) >= 50  # each snapshot got at least its share
    first_a = np.flatnonzero((actions < -0.99).all(1))[0]
    assert first_a >= 100 and np.flatnonzero((actions > 0.99).all(1))[0] > first_a  # random, then a, then b
    assert [e.seed for e in episodes] == list(range(3, 3 + len(episodes)))  # reset seeds continue across segments
