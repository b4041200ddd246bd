"""Episodes, windows and the normalizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffplan.data.episodes import EpisodeArrays, load_episodes
from diffplan.data.normalizer import Normalizer
from diffplan.data.windows import TrajectoryWindows


def toy_episodes() -> EpisodeArrays:
    """Two episodes of 4 and 3 steps whose state value encodes (episode, time)."""
    lengths = np.array([5, 4])
    obs = np.concatenate([[[10 + t, 0, 1, 1] for t in range(5)], [[20 + t, 0, 1, 1] for t in range(4)]]).astype(np.float32)
    act = np.ones((9, 2), np.float32)
    act[[4, 8]] = 0
    rew = np.zeros(9, np.float32)
    rew[[3, 4]] = 1
    return EpisodeArrays(obs, act, rew, np.zeros((9, 2), np.float32), np.array([0, 5]), lengths,
                         terminated=np.array([False, True]))


def stream_episodes(continuous: bool) -> EpisodeArrays:
    """A stream of 3 + 2 steps cut into two episodes; the second starts where the first ended if ``continuous``."""
    first = [[t, 0, 1, 1] for t in range(4)]
    second = [[3 + t if continuous else 50 + t, 0, 1, 1] for t in range(3)]
    obs = np.asarray(first + second, np.float32)
    act = np.arange(7, dtype=np.float32)[:, None].repeat(2, 1)
    return EpisodeArrays(obs, act, np.zeros(7, np.float32), np.zeros((7, 2), np.float32), np.array([0, 4]),
                         np.array([4, 3]), terminated=np.array([False, False]))


def test_joined_windows_run_on_through_a_continuous_stream_keeping_the_seam_state_once():
    w = TrajectoryWindows(stream_episodes(continuous=True), horizon=4, stride=1, velocity_dims=(2, 3),
                          join_episodes=True)
    assert len(w) == 5  # stream states 0..5, every one but the last starts a window
    item = w[1]
    assert item["observations"][:, 0].tolist() == [1, 2, 3, 4]  # runs on through the seam at 3, kept once
    assert item["actions"][2, 0] == 4  # the seam's action is the next episode's, taken from that state
    assert (item["observations"][:, 2] == 1).all()  # no held rows, velocities untouched
    end = w[4]
    assert end["observations"][:, 0].tolist() == [4, 5, 5, 5] and (end["observations"][2:, 2] == 0).all()


def test_joined_windows_do_not_cross_a_gap_or_a_termination():
    gap = TrajectoryWindows(stream_episodes(continuous=False), horizon=4, stride=1, join_episodes=True)
    plain = TrajectoryWindows(stream_episodes(continuous=False), horizon=4, stride=1)
    assert len(gap) == len(plain) and all(torch.equal(gap[i]["observations"], plain[i]["observations"])
                                          for i in range(len(plain)))
    terminated = stream_episodes(continuous=True)
    terminated = EpisodeArrays(*[getattr(terminated, f) for f in ("observations", "actions", "rewards", "goals",
                                                                  "episode_starts", "episode_lengths")],
                               terminated=np.array([True, False]))
    w = TrajectoryWindows(terminated, horizon=4, stride=1, join_episodes=True)
    assert w[1]["observations"][:, 0].tolist() == [1, 2, 3, 3]


def test_windows_never_cross_episodes_and_hold_the_last_state():
    w = TrajectoryWindows(toy_episodes(), horizon=4, stride=2, velocity_dims=(2, 3))
    assert len(w) == 4 + 3
    for i in range(len(w)):
        item = w[i]
        episode = int(item["observations"][0, 0]) // 10
        assert (item["observations"][:, 0] // 10 == episode).all()
        _, padded = w.indices(i)
        assert (item["observations"][padded, 2:] == 0).all() and (item["actions"][padded] == 0).all()
        positions = item["observations"][:, 0]
        assert (positions[1:] >= positions[:-1]).all()  # time never runs backwards into another episode
    last = w[3]  # starts at t=3 of episode 1: t=3, then held at t=4
    assert last["observations"][:, 0].tolist() == [13, 14, 14, 14]


def test_window_values_are_discounted_average_rewards():
    w = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5)
    # window starting at t=3 of episode 1 sees rewards (1, 1): average 1
    assert w[3]["value"].item() == pytest.approx(1.0)
    assert w[0]["value"].item() == pytest.approx(0.0)


def test_window_returns_are_discounted_returns_to_go_within_the_episode():
    w = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5)
    # episode 1 earns reward 1 at t=3 only (row 4 is its terminal state and repeats it, earning nothing)
    assert [w[i]["returns"][0].item() for i in range(4)] == pytest.approx([0.125, 0.25, 0.5, 1.0])
    assert [w[i]["returns"][0].item() for i in range(4, 7)] == pytest.approx([0.0, 0.0, 0.0])  # episode 2 earns nothing
    # every plan point carries its own state's return-to-go; held rows past the end earn nothing
    assert w[2]["returns"].tolist() == pytest.approx([0.5, 1.0])
    assert w[3]["returns"].tolist() == pytest.approx([1.0, 0.0])


def test_termination_penalty_lands_on_the_last_reward_of_terminated_episodes_only():
    plain = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5)
    penalized = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5, termination_penalty=-100)
    # episode 1 ran into its time limit: unchanged; episode 2 fell at its last step (t=2)
    assert [penalized[i]["returns"][0].item() for i in range(4)] == [plain[i]["returns"][0].item() for i in range(4)]
    assert [penalized[i]["returns"][0].item() for i in range(4, 7)] == pytest.approx([-25.0, -50.0, -100.0])


def test_return_value_target_sees_rewards_past_the_window():
    window = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5)
    returns = TrajectoryWindows(toy_episodes(), horizon=2, stride=1, discount=0.5, value_target="returns")
    # t=1 of episode 1: rewards (0, 0) inside the window, reward 1 two steps later
    assert window[1]["value"].item() == pytest.approx(0.0)
    assert returns[1]["value"].item() == pytest.approx(0.25 * (1 - 0.5))


def test_bad_window_arguments():
    with pytest.raises(ValueError, match="horizon"):
        TrajectoryWindows(toy_episodes(), horizon=1)
    with pytest.raises(ValueError, match="value_target must be 'window' or 'returns'"):
        TrajectoryWindows(toy_episodes(), horizon=2, value_target="return")


def test_normalizer_round_trip_and_range():
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(100, 4)) * 5, "actions": rng.uniform(-1, 1, (100, 2))}
    data["observations"][:, 3] = 2.0  # a constant dimension must not divide by zero
    norm = Normalizer.fit(data)
    x = torch.as_tensor(data["observations"], dtype=torch.float32)
    z = norm.normalize("observations", x)
    assert z[:, :3].min() == pytest.approx(-1, abs=1e-5) and z[:, :3].max() == pytest.approx(1, abs=1e-5)
    torch.testing.assert_close(norm.unnormalize("observations", z), x)
    torch.testing.assert_close(norm.unnormalize("observations", z[:, :2], dims=[0, 1]), x[:, :2])


def test_normalizer_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit({"observations": np.array([[0.0], [np.nan]])})


def test_load_episodes_uses_the_episodes_goal_and_caches(tiny_dataset, umaze):
    import minari

    arrays = load_episodes(umaze.dataset.local_id, umaze, progress=False)
    ds = minari.load_dataset(umaze.dataset.local_id)
    ep = ds[2]
    s, n = arrays.episode_starts[2], arrays.episode_lengths[2]
    np.testing.assert_allclose(arrays.observations[s:s + n], ep.observations["observation"], rtol=1e-6)
    np.testing.assert_allclose(arrays.goals[s], ep.observations["desired_goal"][-1], rtol=1e-6)  # reached at the end
    assert arrays.actions[s + n - 1].tolist() == [0, 0]
    again = load_episodes(umaze.dataset.local_id, umaze, progress=False)  # from the cache
    np.testing.assert_array_equal(again.observations, arrays.observations)


def test_the_goal_of_a_goal_hold_episode_is_the_one_its_ball_stays_at():
    """In -hold data the ball stays at its goal until the cut, so each episode's loaded goal is where it ends."""
    from diffplan.data.recipes import generate_dataset
    from diffplan.tasks import load_task

    task = load_task("pointmaze-umaze-hold")
    generate_dataset(task, steps=1500, seed=0, dataset_id="diffplan/test/umaze-hold-v0", progress=False,
                     reference_episodes=2, overwrite=True)
    arrays = load_episodes("diffplan/test/umaze-hold-v0", task, progress=False)
    cut = arrays.episode_lengths[:-1] > 2  # the last episode ends at the step limit, not at its goal
    ends = (arrays.episode_starts + arrays.episode_lengths - 1)[:-1][cut]
    distance = np.linalg.norm(arrays.observations[ends, :2] - arrays.goals[ends], axis=1)
    assert len(distance) >= 3 and distance.max() <= 0.45


def test_missing_dataset_says_how_to_generate_it(umaze):
    with pytest.raises(FileNotFoundError, match="diffplan data generate pointmaze-umaze --dataset-id"):
        load_episodes("diffplan/pointmaze/nothing-v0", umaze)


def test_corrupt_dataset_fails_clearly(tiny_dataset, umaze, tmp_path, monkeypatch):
    import shutil

    from diffplan.data.writer import dataset_dir

    src = dataset_dir(umaze.dataset.local_id)
    dst = dataset_dir("diffplan/test/corrupt-v0")
    shutil.copytree(src, dst)
    h5 = dst / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_episodes("diffplan/test/corrupt-v0", umaze)


def test_results_file_of_an_older_version_gains_the_new_columns_without_losing_rows(tmp_path):
    import csv

    from diffplan.evaluation.results import COLUMNS, append_row, read_rows

    old_columns = [c for c in COLUMNS if c != "act_ms_b1"]
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_columns)
        writer.writeheader()
        writer.writerow({c: "" for c in old_columns} | {"task": "old", "plan_ms_b1": "12.5"})
    append_row(path, {"task": "new", "plan_ms_b1": 3.0, "act_ms_b1": 1.5})
    rows = read_rows(path)
    assert [r["task"] for r in rows] == ["old", "new"]
    assert (rows[0]["plan_ms_b1"], rows[0]["act_ms_b1"]) == ("12.5", "")
    assert (rows[1]["plan_ms_b1"], rows[1]["act_ms_b1"]) == ("3", "1.5")
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a results file"):
        append_row(path, {"task": "new"})


@pytest.mark.parametrize("kind", ["minmax", "gaussian", "cdf"])
def test_every_normalizer_kind_round_trips_and_saves_its_statistics(kind, tmp_path):
    from diffplan.io import load_module, save_module

    rng = np.random.default_rng(0)
    data = {"observations": np.concatenate([rng.exponential(3.0, (500, 2)), np.full((500, 1), 2.0)], 1),
            "actions": rng.uniform(-1, 1, (500, 2))}
    norm = Normalizer.fit(data, {"observations": kind})
    x = torch.as_tensor(data["observations"], dtype=torch.float32)
    z = norm.normalize("observations", x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(norm.unnormalize("observations", z), x, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.unnormalize("observations", z[:, 1:], dims=[1, 2]), x[:, 1:], rtol=1e-4, atol=1e-4)
    save_module(norm, tmp_path / "normalizer")
    loaded = load_module(tmp_path / "normalizer")
    assert loaded.kinds == norm.kinds
    torch.testing.assert_close(loaded.normalize("observations", x), z)


def test_gaussian_normalizer_standardizes_and_is_unbounded():
    rng = np.random.default_rng(1)
    data = {"observations": rng.normal(3.0, 5.0, (2000, 3))}
    norm = Normalizer.fit(data, {"observations": "gaussian"})
    z = norm.normalize("observations", torch.as_tensor(data["observations"], dtype=torch.float32))
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=1e-3, rtol=0)
    assert not norm.is_bounded("observations") and Normalizer.fit(data).is_bounded("observations")


def test_cdf_normalizer_spreads_a_skewed_dim_evenly_over_minus_one_to_one():
    rng = np.random.default_rng(2)
    data = {"observations": rng.exponential(1.0, (5000, 1)) ** 3}  # heavily skewed
    cdf = Normalizer.fit(data, {"observations": "cdf"})
    minmax = Normalizer.fit(data)
    x = torch.as_tensor(data["observations"], dtype=torch.float32)
    zc, zm = cdf.normalize("observations", x), minmax.normalize("observations", x)
    assert zc.min() >= -1 - 1e-5 and zc.max() <= 1 + 1e-5
    # quartiles of the normalized data sit near -0.5, 0, 0.5 (uniform); min-max piles the data near -1
    quartiles = torch.quantile(zc[:, 0], torch.tensor([0.25, 0.5, 0.75]))
    torch.testing.assert_close(quartiles, torch.tensor([-0.5, 0.0, 0.5]), atol=0.03, rtol=0)
    assert torch.quantile(zm[:, 0], 0.75) < -0.9


def test_unknown_normalizer_kind_fails_clearly():
    with pytest.raises(ValueError, match="Unknown normalizer kind"):
        Normalizer.fit({"observations": np.zeros((3, 2))}, {"observations": "zscore"})
