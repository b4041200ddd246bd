"""benchmarks/pointmaze/rollout_stability.py on the tiny Diffusion Forcing planner: rows, plot, open-loop replay."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from diffplan.data.episodes import load_episodes


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("pointmaze/rollout_stability.py")


def test_replaying_the_recorded_actions_from_a_dataset_start_reaches_the_recorded_positions(script, tiny_dataset,
                                                                                             diffusion_forcing_planner):
    task = diffusion_forcing_planner.task
    episodes = load_episodes(task.dataset.local_id, task, progress=False)
    first = [i for i, n in zip(episodes.episode_starts, episodes.episode_lengths) if n > 30][:2]
    starts = episodes.observations[first]
    actions = np.stack([episodes.actions[i:i + 30] for i in first])
    reached = script.execute_open_loop(diffusion_forcing_planner, starts, actions)
    recorded = np.stack([episodes.observations[i:i + 30, :2] for i in first])
    np.testing.assert_allclose(reached, recorded, atol=1e-6)  # start state set exactly; same dynamics


def test_one_long_rollout_holds_the_shorter_ones(diffusion_forcing_planner, obs_batch):
    h = diffusion_forcing_planner.horizon
    short = diffusion_forcing_planner.rollout(obs_batch, h, generator=torch.Generator().manual_seed(3))
    long = diffusion_forcing_planner.rollout(obs_batch, 4 * h, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(long.observations[:, :h], short.observations, rtol=0, atol=0)
    torch.testing.assert_close(long.actions[:, :h], short.actions, rtol=0, atol=0)


def test_the_script_writes_a_row_per_multiple_and_a_plot(script, tiny_dataset, diffusion_forcing_planner, tmp_path,
                                                         capsys):
    diffusion_forcing_planner.save_pretrained(tmp_path / "df" / "planner")
    out = tmp_path / "stability.csv"
    script.main([str(tmp_path / "df" / "planner"), "--starts", "3", "--csv", str(out), "--goal", "episode"])
    rows = list(csv.DictReader(out.open()))
    h = diffusion_forcing_planner.horizon
    assert [(r["multiple"], r["steps"]) for r in rows] == [("1", str(h)), ("2", str(2 * h)), ("4", str(4 * h))]
    assert all(r["planner"] == "df" and r["starts"] == "3" and 0 <= float(r["wall_share"]) <= 1 for r in rows)
    assert all(float(r["gap_mean"]) > 0 for r in rows)
    assert (tmp_path / "figures" / "rollout-stability-df.png").stat().st_size > 10_000
    assert "4H gap / 1H gap" in capsys.readouterr().out


def test_gap_starts_at_zero_and_walls_are_counted(script, tiny_dataset, diffusion_forcing_planner, monkeypatch):
    planner = diffusion_forcing_planner
    starts, _ = script.dataset_starts(planner, planner.task.dataset.local_id, 2, seed=0)
    rows, gap = script.stability(planner, starts, None, [1, 2], seed=0)
    assert gap.shape == (2, 2 * planner.horizon) and np.abs(gap[:, 0]).max() < 1e-5  # the plan starts where we do
    assert rows[1]["gap_mean"] == pytest.approx(gap.mean())
    monkeypatch.setattr(script, "in_free_cell", lambda maze, xy: np.zeros(xy.shape[:-1], dtype=bool))
    assert [r["wall_share"] for r in script.stability(planner, starts, None, [1], seed=0)[0]] == [1.0]
