"""Episodes of a Minari dataset as flat float32 arrays, cached after the first load."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import minari
import numpy as np
from tqdm.auto import tqdm

from diffplan.data.writer import dataset_dir, dataset_exists
from diffplan.tasks import Task

CACHE_DIR = Path(os.environ.get("DIFFPLAN_CACHE", Path.home() / ".cache" / "diffplan"))


@dataclass(frozen=True)
class EpisodeArrays:
    """All episodes of a dataset, concatenated along time. An episode of T steps holds T + 1 states.

    Attributes:
        observations: (N, obs_dim) states, N = sum over episodes of (T + 1).
        actions: (N, act_dim) the action taken in each state; zero in an episode's last state.
        rewards: (N,) the reward that action earned; an episode's last state repeats its last reward.
        goals: (N, goal_dim) the episode's goal, or an empty (N, 0) array for tasks without goals.
        episode_starts: (E,) index of each episode's first state.
        episode_lengths: (E,) number of states of each episode (T + 1).
        terminated: (E,) whether each episode ended in a terminal state (a fall), not a time limit.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    goals: np.ndarray
    episode_starts: np.ndarray
    episode_lengths: np.ndarray
    terminated: np.ndarray

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]


def missing_dataset_message(dataset_id: str, task: Task | None) -> str:
    hint = f"diffplan data generate {task.name}" if task is not None else "diffplan data generate <task>"
    if task is not None and dataset_id != task.dataset.local_id:
        hint += f" --dataset-id {dataset_id}"
    return (f"Dataset {dataset_id!r} is not in the Minari datasets folder ({dataset_dir(dataset_id).parent}). "
            f"Generate it locally with:\n    {hint}\n(or set MINARI_DATASETS_PATH to the folder that holds it).")


def load_episodes(dataset_id: str, task: Task, progress: bool = True) -> EpisodeArrays:
    """Load ``dataset_id`` with ``minari.load_dataset`` and flatten it (cached as .npz, keyed by content)."""
    if not dataset_exists(dataset_id):
        raise FileNotFoundError(missing_dataset_message(dataset_id, task))
    cache = _cache_path(dataset_id, task)
    if cache.exists():
        try:
            with np.load(cache) as f:
                return EpisodeArrays(**{k: f[k] for k in f.files})
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error):
            cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    try:
        arrays = _flatten(minari.load_dataset(dataset_id), task, progress)
    except (OSError, KeyError, RuntimeError, json.JSONDecodeError) as err:  # h5py/minari errors on damaged files
        raise ValueError(f"Dataset {dataset_id!r} at {dataset_dir(dataset_id)} could not be read ({err}). It is "
                         f"truncated or corrupt; regenerate it with `diffplan data generate {task.name} "
                         f"--overwrite`.") from err
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # two trainings may build the same cache at once
    np.savez(tmp, **arrays.__dict__)
    os.replace(tmp, cache)
    return arrays


def _cache_path(dataset_id: str, task: Task) -> Path:
    data = dataset_dir(dataset_id) / "data"
    stamp = [dataset_id, task.observation_key, task.goal_key, "v3"]
    for f in sorted(data.iterdir()):
        st = f.stat()
        stamp += [f.name, str(st.st_size), str(st.st_mtime_ns)]
    key = hashlib.sha1("|".join(map(str, stamp)).encode()).hexdigest()[:16]
    return CACHE_DIR / dataset_id / f"episodes-{key}.npz"


def _flatten(dataset: minari.MinariDataset, task: Task, progress: bool) -> EpisodeArrays:
    obs, act, rew, goals, lengths, terminated = [], [], [], [], [], []
    episodes = dataset.iterate_episodes()
    for ep in tqdm(episodes, total=dataset.total_episodes, desc="load episodes", disable=not progress,
                   mininterval=1.0):
        o = ep.observations[task.observation_key] if task.observation_key else ep.observations
        if isinstance(o, dict):
            raise TypeError(f"Observations of {dataset.spec.dataset_id!r} are a dict; set observation_key in the "
                            f"task card {task.name!r} to one of {sorted(o)}.")
        t = len(ep)
        a = np.zeros((t + 1, ep.actions.shape[-1]), np.float32)
        a[:t] = ep.actions
        r = np.empty(t + 1, np.float32)
        r[:t] = ep.rewards
        r[t] = ep.rewards[-1] if t else 0.0
        obs.append(np.asarray(o, np.float32))
        act.append(a)
        rew.append(r)
        if task.goal_key:
            # An episode's first observation is the previous episode's last and may still show its goal (pointmaze
            # quirk); the second shows the episode's own. (Not the last: -hold data made before the recipe's fix
            # show the next episode's goal there.)
            g = np.asarray(ep.observations[task.goal_key][min(1, t)], np.float32)
            goals.append(np.broadcast_to(g, (t + 1, g.shape[-1])))
        lengths.append(t + 1)
        terminated.append(bool(t and ep.terminations[-1]))
    lengths_arr = np.asarray(lengths, np.int64)
    n = int(lengths_arr.sum())
    return EpisodeArrays(
        observations=np.concatenate(obs), actions=np.concatenate(act), rewards=np.concatenate(rew),
        goals=np.concatenate(goals) if goals else np.zeros((n, 0), np.float32),
        episode_starts=np.concatenate([[0], np.cumsum(lengths_arr)[:-1]]).astype(np.int64),
        episode_lengths=lengths_arr, terminated=np.asarray(terminated, bool))
