"""Roll a planner out on the task's evaluation env (vectorised) and score it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from diffplan.environments import make_eval_env, make_eval_vector_env
from diffplan.evaluation.protocols import check_protocol, controller_returns, share_of
from diffplan.objectives import Objective, avoid_terms, objective_from_spec
from diffplan.planner import Planner
from diffplan.tasks import Task


@dataclass
class EvaluationResult:
    """Per-episode outcomes (arrays of length ``episodes``) and timing."""

    task: Task
    seeds: np.ndarray
    returns: np.ndarray
    first_reach: np.ndarray  # env step of the first reward, -1 if never
    lengths: np.ndarray  # env steps until the episode ended (terminated, truncated or the step limit)
    plan_ms_batch1: float
    act_ms_batch1: float
    plan_ms_per_call: float
    plan_batch: int
    paths: list[np.ndarray] = field(default_factory=list)  # executed (T, obs_dim) per episode
    plans: list[np.ndarray] = field(default_factory=list)  # first plan (H, obs_dim) per episode
    goals: list[np.ndarray] = field(default_factory=list)
    subgoals: list[np.ndarray] = field(default_factory=list)  # first plan's subgoals (hierarchical planners)
    protocol: str = "task"
    controller_returns: np.ndarray | None = None  # noise-free controller on the same episodes (random_pairs)
    violations: np.ndarray | None = None  # (episodes,) bool: the executed path entered an avoided region

    @property
    def scores(self) -> np.ndarray:
        return self.task.normalized_score(self.returns)

    @property
    def success(self) -> np.ndarray:
        """Reached the goal (goal-reaching tasks); NaN for tasks without a goal (locomotion)."""
        if not self.task.goal_dims:
            return np.full(len(self.returns), np.nan)
        return self.first_reach >= 0

    def summary(self) -> dict[str, float]:
        n = len(self.returns)
        se = standard_error
        reached = self.first_reach[self.first_reach >= 0]
        return {"episodes": n, "return_mean": float(self.returns.mean()), "return_se": se(self.returns),
                "score_mean": float(self.scores.mean()), "score_se": se(self.scores),
                "success": float(self.success.mean()),
                "first_reach_mean": float(reached.mean()) if len(reached) else float("nan"),
                "plan_ms_b1": self.plan_ms_batch1, "act_ms_b1": self.act_ms_batch1,
                "plan_ms_per_call": self.plan_ms_per_call,
                "plan_batch": self.plan_batch, "protocol": self.protocol,
                **dict(zip(("controller_share", "controller_share_se"), self.controller_share)),
                "violation": float(self.violations.mean()) if self.violations is not None else float("nan")}

    @property
    def controller_share(self) -> tuple[float, float]:
        """100 x mean return / the noise-free controller's mean return on the same episodes, and its standard
        error; NaN without controller returns (protocol "task")."""
        if self.controller_returns is None:
            return float("nan"), float("nan")
        return share_of(self.returns, self.controller_returns)

    def __str__(self) -> str:
        s = self.summary()
        reach = (f", success {100 * s['success']:.0f}%, first reach {s['first_reach_mean']:.0f} steps"
                 if self.task.goal_dims else "")
        if self.controller_returns is not None:
            reach += (f", {s['controller_share']:.0f} ± {s['controller_share_se']:.0f}% of the controller's return "
                      f"({self.protocol})")
        if self.violations is not None:
            reach += f", violation {100 * s['violation']:.0f}%"
        return (f"{self.task.name}: normalized score {s['score_mean']:.1f} ± {s['score_se']:.1f} (x100, mean ± SE over "
                f"{s['episodes']} episodes), return {s['return_mean']:.1f} ± {s['return_se']:.1f}{reach}, plan "
                f"{s['plan_ms_b1']:.1f} ms, {s['act_ms_b1']:.1f} ms per action (batch 1)")


def standard_error(values: np.ndarray | list[float]) -> float:
    """Standard error of the mean over episodes (0 for a single episode)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def plan_latency_ms(planner: Planner, obs: object, repeats: int = 10) -> float:
    """Median wall time of ``planner.plan`` on one observation, after one warm-up call."""
    generator = torch.Generator().manual_seed(0)
    planner.plan(obs, generator=generator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        planner.plan(obs, generator=generator)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def interleaved_plan_latency_ms(planners: dict[str, Planner], obs: object, rounds: int = 3, repeats: int = 10
                                ) -> dict[str, float]:
    """Median ``plan_latency_ms`` of each planner over ``rounds`` rounds, the planners interleaved within a round so
    that drift of a shared machine hits all of them alike (compare them as ratios from one call)."""
    times: dict[str, list[float]] = {name: [] for name in planners}
    for _ in range(rounds):
        for name, planner in planners.items():
            times[name].append(plan_latency_ms(planner, obs, repeats))
    return {name: float(np.median(t)) for name, t in times.items()}


def act_latency_ms(planner: Planner, task: Task, steps: int = 20, seed: int = 0) -> float:
    """Mean wall time of ``planner.act`` per env step at batch 1 in a live episode: replans, warm starts and
    actions between replans all count, so this is the cost of control. The first (cold) plan is left out."""
    env = make_eval_env(task)
    obs, _ = env.reset(seed=seed)
    planner.reset(seed=seed)
    planner.act(obs)
    total = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        action = planner.act(obs)
        total += time.perf_counter() - t0
        obs, _, terminated, truncated, _ = env.step(np.asarray(action, dtype=np.float32))
        if terminated or truncated:  # keep timing in a fresh episode (its first plan is cold, like any start)
            obs, _ = env.reset()
            planner.reset(seed=seed)
    env.close()
    return 1e3 * total / steps


def evaluate(planner: Planner, task: Task, episodes: int = 20, seed: int = 1000, num_envs: int = 10,
             progress: bool = True, keep_paths: int = 8, protocol: str = "task",
             violation: Objective | dict | list | None = None) -> EvaluationResult:
    """Run ``episodes`` episodes with reset seeds ``seed, seed + 1, ...`` in batches of ``num_envs``.

    An episode ends at the task's step limit or when its env terminates (e.g. a hopper falls); rewards after
    that are not counted, and the batch stops once every episode has ended.

    Args:
        protocol: ``"task"`` (the task card's evaluation env) or ``"random_pairs"`` (start and goal cells drawn
            from each reset seed; the noise-free controller then runs the same episodes for ``controller_share``),
            see ``diffplan.evaluation.protocols``.
        violation: an objective (or its JSON spec) with avoid-region terms; each episode's executed path, every
            step of it, is checked against them (``EvaluationResult.violations``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    check_protocol(protocol, task)
    regions = violation_regions(violation, task)
    num_envs = min(num_envs, episodes)
    envs = make_eval_vector_env(task, num_envs, protocol)
    steps = task.eval.max_episode_steps
    returns, first_reach, lengths, seeds = [], [], [], []
    paths, plans, goals, subgoals, violations = [], [], [], [], []
    plan_time, plan_calls, latency, act_latency = 0.0, 0, float("nan"), float("nan")
    bar = tqdm(total=episodes * steps, desc=f"evaluate {task.name}", unit="step", disable=not progress,
               unit_scale=True, mininterval=1.0)
    for first in range(0, episodes, num_envs):
        batch_seeds = [seed + first + i for i in range(num_envs)]
        obs, _ = envs.reset(seed=batch_seeds)
        if first == 0:
            single = {k: v[0] for k, v in obs.items()} if isinstance(obs, dict) else obs[0]
            latency = plan_latency_ms(planner, single)
            act_latency = act_latency_ms(planner, task, seed=seed)
        planner.reset(seed=seed + first)
        ret = np.zeros(num_envs)
        reach = np.full(num_envs, -1)
        alive = np.ones(num_envs, dtype=bool)
        length = np.full(num_envs, steps)
        trace = []
        first_plan = None
        for t in range(steps):
            before = planner.current_plan
            t0 = time.perf_counter()
            action = planner.act(obs)
            if planner.current_plan is not before:
                plan_time += time.perf_counter() - t0
                plan_calls += 1
                first_plan = first_plan if first_plan is not None else planner.current_plan
            trace.append(obs[task.observation_key] if isinstance(obs, dict) else obs)
            obs, reward, terminated, truncated, _ = envs.step(np.asarray(action, dtype=np.float32))
            ret += reward * alive
            if task.goal_dims:
                reach[(reach < 0) & (reward > 0) & alive] = t
            ended = alive & (terminated | truncated)
            length[ended] = t + 1
            alive &= ~ended
            bar.update(num_envs)
            if not alive.any():
                bar.update(num_envs * (steps - t - 1))
                break
        take = min(num_envs, episodes - first)
        returns.append(ret[:take])
        first_reach.append(reach[:take])
        lengths.append(length[:take])
        seeds.extend(batch_seeds[:take])
        trace_arr = np.stack(trace, axis=1)  # (num_envs, T, obs_dim)
        if regions is not None:  # the observation after the last step is part of the path too
            final = obs[task.observation_key] if isinstance(obs, dict) else obs
            full = np.concatenate([trace_arr, np.asarray(final)[:, None]], axis=1)
            violations.append(entered(regions, full, length)[:take])
        for i in range(take):
            if len(paths) < keep_paths:
                paths.append(trace_arr[i])
                plans.append(first_plan.observations[i].cpu().numpy())
                if first_plan.subgoals is not None:
                    subgoals.append(first_plan.subgoals[i].cpu().numpy())
                if isinstance(obs, dict) and task.goal_key:
                    goals.append(np.asarray(obs[task.goal_key][i]))
    bar.close()
    envs.close()
    reference = controller_returns(task, seeds, protocol) if protocol != "task" else None
    return EvaluationResult(task=task, seeds=np.asarray(seeds), returns=np.concatenate(returns),
                            first_reach=np.concatenate(first_reach), lengths=np.concatenate(lengths),
                            plan_ms_batch1=latency, act_ms_batch1=act_latency,
                            plan_ms_per_call=1e3 * plan_time / max(plan_calls, 1), plan_batch=num_envs,
                            paths=paths, plans=plans, goals=goals, subgoals=subgoals, protocol=protocol,
                            controller_returns=reference,
                            violations=np.concatenate(violations) if regions is not None else None)


def violation_regions(violation: Objective | dict | list | None, task: Task) -> list[Objective] | None:
    """The avoid-region terms of ``violation`` (an objective or its spec); None for None.

    Raises:
        ValueError: the objective has no ``avoid_box`` or ``avoid_disc`` term.
    """
    if violation is None:
        return None
    regions = avoid_terms(objective_from_spec(violation, task))
    if not regions:
        raise ValueError(f"A violation rate needs an 'avoid_box' or 'avoid_disc' objective, got {violation!r}.")
    return regions


def entered(regions: list[Objective], paths: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B,) bool: path ``b`` (B, T + 1, O) is inside some region at a step ``t <= lengths[b]`` (the states of
    its episode: later ones belong to a vector env's next episode)."""
    positions = {"observations": torch.as_tensor(paths, dtype=torch.float32)}
    inside = torch.zeros(paths.shape[:2], dtype=torch.bool)
    for region in regions:
        inside |= region.depth(region.select(positions)) > 0
    within = np.arange(paths.shape[1])[None] <= np.asarray(lengths)[:, None]
    return (inside.numpy() & within).any(axis=1)
