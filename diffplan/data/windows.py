"""Trajectory windows: fixed-length, strided slices of one episode each (padding never crosses episodes), or of
a continuous stream of episodes (``join_episodes``)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from diffplan.data.episodes import EpisodeArrays


class TrajectoryWindows(Dataset):
    """``horizon`` states taken every ``stride`` steps from a start state inside one episode.

    Past the episode's last state, the window holds that state ("drive to the goal, then stop"): position
    fields repeat it, ``velocity_dims`` and actions are zero. Rewards repeat the last reward.

    Items are dicts of float32 tensors: ``observations`` (H, obs_dim), ``actions`` (H, act_dim),
    ``goal`` (goal_dim,), ``value`` () the value-head target (below), ``returns`` (H,) the discounted return-to-go
    from each plan point (0 on held rows past the episode's end).

    ``value_target`` picks what the value head learns: ``"window"``, the discounted average reward over the
    window (goal reaching: a plan is only as good as its own steps), or ``"returns"``, the discounted
    return-to-go from the window's start to the episode's end times (1 - discount), as Diffuser uses for
    locomotion: it sees falls and terminations past the window, and the scaling keeps it an average reward
    per step, on the same scale as ``"window"``.

    ``termination_penalty`` is added to the last reward of episodes that ended in a terminal state (a fall),
    as Diffuser and Decision Diffuser do for locomotion (-100), so returns and values see that falling is bad.

    ``join_episodes``: a window may run on into the next episode when the data are one continuous stream cut into
    episodes (the next episode starts at the state where the last one ended, and the last one did not terminate),
    as the maze recipes cut their controller's stream at each goal reached. Windows then show real dynamics past a
    goal instead of a held state whose velocity jumps to zero; padding is used only at the stream's true ends.
    Returns-to-go and goals stay those of each state's own episode.
    """

    def __init__(self, episodes: EpisodeArrays, horizon: int, stride: int = 1,
                 velocity_dims: tuple[int, ...] = (), discount: float = 0.99, value_target: str = "window",
                 termination_penalty: float = 0.0, join_episodes: bool = False):
        if horizon < 2 or stride < 1:
            raise ValueError(f"Need horizon >= 2 and stride >= 1, got horizon={horizon}, stride={stride}.")
        if value_target not in ("window", "returns"):
            raise ValueError(f"value_target must be 'window' or 'returns', got {value_target!r}.")
        self.value_target, self.discount = value_target, discount
        self.episodes = episodes
        self.horizon, self.stride = horizon, stride
        self.velocity_dims = list(velocity_dims)
        self.stream, segment_lengths = state_stream(episodes, join_episodes)
        # Every state except a segment's last one can start a window; positions index ``stream``.
        steps = segment_lengths - 1
        segment_starts = np.concatenate([[0], np.cumsum(segment_lengths)[:-1]])
        self.starts = np.concatenate([s + np.arange(n) for s, n in zip(segment_starts, steps)])
        self.ends = np.repeat(segment_starts + segment_lengths - 1, steps)
        weights = (discount ** (np.arange(horizon) * stride)).astype(np.float32)
        self.value_weights = weights / weights.sum()
        self.rewards = penalized_rewards(episodes, termination_penalty)
        self.returns_to_go = discounted_returns_to_go(episodes, discount, self.rewards)

    def __len__(self) -> int:
        return len(self.starts)

    def indices(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """State indices of window ``i`` (H,) and a mask of the padded rows (H,)."""
        position = self.starts[i] + self.stride * np.arange(self.horizon)
        padded = position > self.ends[i]
        return self.stream[np.minimum(position, self.ends[i])], padded

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx, padded = self.indices(i)
        e = self.episodes
        obs = e.observations[idx]
        act = e.actions[idx]
        if padded.any():
            obs[np.ix_(padded, self.velocity_dims)] = 0.0
            act[padded] = 0.0
        if self.value_target == "returns":
            value = float(self.returns_to_go[idx[0]]) * (1.0 - self.discount)
        else:
            value = float(self.value_weights @ self.rewards[idx])
        return {"observations": torch.from_numpy(obs), "actions": torch.from_numpy(act),
                "goal": torch.from_numpy(e.goals[idx[0]].copy()),
                "value": torch.tensor(value, dtype=torch.float32),
                "returns": torch.from_numpy(np.where(padded, 0.0, self.returns_to_go[idx]).astype(np.float32))}


def state_stream(episodes: EpisodeArrays, join: bool) -> tuple[np.ndarray, np.ndarray]:
    """The state indices in time order (S,) and the lengths of its segments (G,), which windows never cross.

    Without ``join`` each episode is a segment. With it, an episode that did not terminate and whose last state is
    the next episode's first state runs on into it; the repeated state is kept once (the next episode's copy, which
    carries the action taken from it).
    """
    starts, lengths = episodes.episode_starts, episodes.episode_lengths
    if not join:
        return np.arange(len(episodes.observations)), lengths.copy()
    last = starts + lengths - 1
    continues = np.zeros(len(starts), dtype=bool)
    continues[:-1] = ~episodes.terminated[:-1] & np.all(
        episodes.observations[last[:-1]] == episodes.observations[starts[1:]], axis=-1)
    kept = [np.arange(s, s + n - 1 if c else s + n) for s, n, c in zip(starts, lengths, continues)]
    segment_lengths, run = [], 0
    for part, c in zip(kept, continues):
        run += len(part)
        if not c:
            segment_lengths.append(run)
            run = 0
    return np.concatenate(kept), np.asarray(segment_lengths, dtype=np.int64)


def penalized_rewards(episodes: EpisodeArrays, termination_penalty: float) -> np.ndarray:
    """(N,) rewards with ``termination_penalty`` added to the last step of each terminated episode."""
    rewards = episodes.rewards.astype(np.float32).copy()
    if termination_penalty:
        last_steps = (episodes.episode_starts + episodes.episode_lengths - 2)[episodes.terminated]
        rewards[last_steps] += termination_penalty
        rewards[last_steps + 1] += termination_penalty  # the terminal state repeats its last reward
    return rewards


def discounted_returns_to_go(episodes: EpisodeArrays, discount: float, rewards: np.ndarray | None = None) -> np.ndarray:
    """(N,) sum_k discount^k r_{t+k} to the end of each state's episode (the last state's repeat excluded)."""
    rewards = episodes.rewards if rewards is None else rewards
    out = np.zeros(len(rewards), np.float64)
    for start, n in zip(episodes.episode_starts, episodes.episode_lengths):
        acc = 0.0
        for t in range(start + n - 2, start - 1, -1):  # state start + n - 1 is terminal: it earns nothing
            acc = rewards[t] + discount * acc
            out[t] = acc
    return out.astype(np.float32)
