"""Reference scores (Minari's method) with a progress bar: the pass can take minutes on the large mazes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from minari.utils import get_average_reference_score
from tqdm.auto import tqdm


class _EpisodeProgress(gym.Wrapper):
    """Advances ``bar`` by one at the end of every episode."""

    def __init__(self, env: gym.Env, bar: tqdm):
        super().__init__(env)
        self.bar = bar

    def step(self, action: Any) -> tuple[Any, ...]:
        out = super().step(action)
        if out[2] or out[3]:
            self.bar.update(1)
        return out


def reference_score(env: gym.Env, policy: Callable[[Any], Any], episodes: int, desc: str,
                    progress: bool = True) -> float:
    """``minari.utils.get_average_reference_score`` (same seeds, same number), showing episodes done."""
    with tqdm(total=episodes, desc=desc, unit="episode", disable=not progress, mininterval=1.0) as bar:
        return get_average_reference_score(_EpisodeProgress(env, bar), policy, episodes)
