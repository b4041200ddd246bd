"""The published PointMaze recipe (Minari ``D4RL/pointmaze/*-v2``), regenerated locally.

One continuing ball run of ``steps`` steps with random goals (``reset_target=True``); the noisy waypoint
controller drives it, and an episode is cut (truncated) whenever the goal is reached. Reference scores use
Minari's method on the single-goal evaluation env.

``hold_steps > 0`` is diffplan's variant (not a published recipe): after each goal is reached the controller
keeps steering to it for ``U{0, ..., hold_steps}`` more steps before the next goal is drawn, and the episode is
cut when the goal changes. The published data reach every goal at full speed and never brake (issue 12's
``goal_arrival.py``), so a planner that executes its own actions never sees how to stop and stay.
"""

from __future__ import annotations

import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.utils import RandomPolicy
from tqdm.auto import tqdm

from diffplan.data.recipes.reference import reference_score
from diffplan.data.recipes.waypoint_controller import WaypointController
from diffplan.data.writer import write_dataset
from diffplan.environments import make_env, make_eval_env
from diffplan.tasks import Task

DESCRIPTION = ("Locally regenerated with diffplan's implementation of the published Minari pointmaze recipe "
               "(QIteration waypoints, PD controller, N(0, {noise}) action noise, {steps} steps, seed {seed}).")


def collect(task: Task, steps: int, seed: int, p_gain: float = 10.0, d_gain: float = -1.0,
            action_noise: float = 0.5, waypoint_jitter: float = 0.2, waypoint_threshold: float = 0.1,
            q_iterations: int = 50, q_discount: float = 0.99, hold_steps: int = 0,
            progress: bool = True) -> list[EpisodeBuffer]:
    """Run the noisy controller for ``steps`` steps and cut the stream into episodes at each new goal.

    With ``hold_steps = 0`` (the published recipe) the env draws a new goal the step it is reached; otherwise the
    goal is held for a random number of steps after the first success (see the module docstring).
    """
    if hold_steps < 0:
        raise ValueError(f"hold_steps must be >= 0, got {hold_steps}.")
    env = make_env(task, max_episode_steps=steps)
    maze_env = env.unwrapped
    maze_env.reset_target = hold_steps == 0  # with holds, this loop draws the next goal itself
    rng = np.random.default_rng(seed)
    controller = WaypointController(env.unwrapped.maze, rng, p_gain, d_gain, waypoint_jitter,
                                    waypoint_threshold, q_iterations, q_discount)
    obs, info = env.reset(seed=seed)
    keys = ("observation", "achieved_goal", "desired_goal")
    observations = {k: np.empty((steps + 1, *obs[k].shape)) for k in keys}
    actions = np.empty((steps, 2), dtype=np.float32)
    rewards = np.empty(steps)
    success = np.zeros(steps + 1, dtype=bool)
    success[0] = bool(info.get("success", False))
    ends = []
    hold_left = None  # steps still to hold the reached goal (None: not reached yet)
    for k in keys:
        observations[k][0] = obs[k]
    for i in tqdm(range(steps), desc=f"collect {task.name}", unit="step", disable=not progress,
                  mininterval=1.0, unit_scale=True):
        actions[i] = np.clip(controller(obs) + rng.normal(size=2) * action_noise, -1.0, 1.0)
        obs, rewards[i], terminated, truncated, info = env.step(actions[i])
        success[i + 1] = info["success"]
        goal_changed = bool(success[i + 1])
        for k in keys:
            observations[k][i + 1] = obs[k]
        if hold_steps:
            if hold_left is None and success[i + 1]:
                hold_left = int(rng.integers(0, hold_steps + 1))
            goal_changed = hold_left is not None and hold_left == 0
            if goal_changed:
                # Drawn after the cut state is recorded: it shows the goal it reached, as the env's own goal
                # resets leave it (the new goal first shows in the next episode's second state).
                obs["desired_goal"] = _draw_next_goal(maze_env, obs["achieved_goal"])
                hold_left = None
            elif hold_left is not None:
                hold_left -= 1
        if goal_changed or terminated or truncated or i == steps - 1:
            ends.append(i + 1)
    env.close()

    buffers, start = [], 0
    for end in ends:
        span = slice(start, end + 1)  # T + 1 observations, the last one shared with the next episode
        obs_ep = {k: observations[k][span] for k in keys}
        t = end - start
        truncations = np.zeros(t, dtype=bool)
        truncations[-1] = True
        buffers.append(EpisodeBuffer(
            id=len(buffers), seed=seed if start == 0 else None, observations=obs_ep,
            actions=actions[start:end], rewards=rewards[start:end], terminations=np.zeros(t, dtype=bool),
            truncations=truncations,
            infos={"success": success[span], "qpos": obs_ep["observation"][:, :2],
                   "qvel": obs_ep["observation"][:, 2:], "goal": obs_ep["desired_goal"]}))
        start = end
    return buffers


def _draw_next_goal(maze_env, position: np.ndarray) -> np.ndarray:
    """Move the env's goal to a random goal cell more than 0.45 from ``position`` (as its own reset does)."""
    goal = maze_env.goal
    while np.linalg.norm(position - goal) <= 0.45:
        goal = maze_env.add_xy_position_noise(maze_env.generate_target_goal())
    maze_env.goal = goal
    maze_env.update_target_site_pos()
    return goal.copy()


def reference_scores(task: Task, episodes: int, seed: int, progress: bool = False,
                     **controller_kwargs: float) -> tuple[float, float]:
    """Minari's method: mean return of ``RandomPolicy`` (min) and of the noise-free controller (max)."""
    eval_env = make_eval_env(task)
    ref_min = reference_score(eval_env, RandomPolicy(eval_env), episodes, "reference: random policy", progress)
    eval_env = make_eval_env(task)
    expert = WaypointController(eval_env.unwrapped.maze, np.random.default_rng(seed), **controller_kwargs)
    ref_max = reference_score(eval_env, expert, episodes, "reference: controller", progress)
    return ref_min, ref_max


def generate(task: Task, steps: int, seed: int, dataset_id: str, overwrite: bool = False, progress: bool = True,
             action_noise: float = 0.5, reference_episodes: int = 100, hold_steps: int = 0,
             **controller_kwargs: float):
    """Collect, score and write the dataset (all-or-nothing); returns the loaded ``MinariDataset``."""
    buffers = collect(task, steps, seed, action_noise=action_noise, hold_steps=hold_steps, progress=progress,
                      **controller_kwargs)
    ref_min, ref_max = reference_scores(task, reference_episodes, seed, progress, **controller_kwargs)
    if progress:
        print(f"reference scores ({reference_episodes} episodes, Minari's method): "
              f"random {ref_min:.2f}, controller {ref_max:.2f}")
    return write_dataset(
        dataset_id, overwrite, buffer=buffers, env=make_env(task, max_episode_steps=steps),
        eval_env=make_eval_env(task), algorithm_name="QIteration", author="diffplan", author_email="diffplan@localhost",
        code_permalink="diffplan.data.recipes.pointmaze", ref_min_score=ref_min, ref_max_score=ref_max,
        num_episodes_average_score=reference_episodes,
        description=DESCRIPTION.format(noise=action_noise, steps=steps, seed=seed)
        + (f" Variant: each goal held for U{{0..{hold_steps}}} steps after it is reached." if hold_steps else ""))
