"""Task cards: one YAML file per benchmark task in ``envs/``, loaded into a frozen :class:`Task`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _find_envs_dir() -> Path:
    """``$DIFFPLAN_ENVS_DIR``, else the cards shipped in the wheel (``diffplan/envs``), else the repo's ``envs/``."""
    if "DIFFPLAN_ENVS_DIR" in os.environ:
        return Path(os.environ["DIFFPLAN_ENVS_DIR"])
    package = Path(__file__).resolve().parent
    shipped = package / "envs"
    return shipped if any(shipped.glob("*.yaml")) else package.parent / "envs"


ENVS_DIR = _find_envs_dir()


@dataclass(frozen=True)
class DatasetCard:
    """Where a task's data lives and how it is regenerated."""

    local_id: str  # id under which `diffplan data generate` stores the regenerated dataset
    hosted_id: str  # the id of the published Minari dataset the recipe reproduces
    recipe: str  # import path of the recipe module, e.g. "diffplan.data.recipes.pointmaze"
    recipe_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalCard:
    """The evaluation environment: a single-goal map, continuing task, fixed episode length."""

    env_id: str
    env_kwargs: dict[str, Any]
    max_episode_steps: int


@dataclass(frozen=True)
class Task:
    """A benchmark task: env, evaluation protocol, dataset, reference scores and planner defaults.

    ``observation_key``/``goal_key`` name the fields of gymnasium dict observations; ``goal_dims`` are the
    observation channels that a goal pins (x, y for PointMaze). Objectives (``diffplan.objectives``) read the
    dims they need from here: ``position_dims`` (default: ``goal_dims``), ``velocity_dims`` and
    ``forward_speed_dim`` (the observation index of the forward velocity in m/s, e.g. 5 on Hopper-v5).
    """

    name: str
    suite: str
    env_id: str
    env_kwargs: dict[str, Any]
    eval: EvalCard
    dataset: DatasetCard
    ref_min_score: float
    ref_max_score: float
    observation_key: str | None = None
    goal_key: str | None = None
    goal_dims: tuple[int, ...] = ()
    window_padding: str = "hold"  # "hold": after an episode ends, stay at its last state, zero velocity/action
    velocity_dims: tuple[int, ...] = ()
    position_dims: tuple[int, ...] = ()
    forward_speed_dim: int | None = None
    discount: float = 0.99
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def positions(self) -> tuple[int, ...]:
        """The observation dims holding the agent's position: ``position_dims``, else ``goal_dims``."""
        return self.position_dims or self.goal_dims

    @property
    def maze_map(self) -> list[list[Any]] | None:
        return self.eval.env_kwargs.get("maze_map")

    def check_goals(self, goals: Any) -> None:
        """Raise if any goal (B, goal_dim) lies in a wall or outside the maze (tasks with a maze map only)."""
        if self.maze_map is None:
            return
        from diffplan.maze import in_free_cell

        outside = ~in_free_cell(self.maze_map, goals)
        if outside.any():
            raise ValueError(f"Goal {goals[outside.argmax()].tolist()} lies in a wall or outside the maze of "
                             f"{self.name!r}; goals must be in a free cell.")

    def normalized_score(self, returns: Any) -> Any:
        """D4RL-style normalized score x100: 0 is the random policy, 100 the reference controller."""
        return 100.0 * (returns - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        d = dict(d)
        try:
            d["eval"] = EvalCard(**d["eval"])
            d["dataset"] = DatasetCard(**d["dataset"])
            for key in ("goal_dims", "velocity_dims", "position_dims"):
                d[key] = tuple(d.get(key, ()))
            return cls(**d)
        except (KeyError, TypeError) as err:
            raise ValueError(f"Invalid task card {d.get('name', '?')!r}: {err}") from err

    @classmethod
    def from_yaml(cls, path: str | Path) -> Task:
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f))


def available_tasks() -> list[str]:
    return sorted(p.stem for p in ENVS_DIR.glob("*.yaml"))


def load_task(name_or_path: str | Path | Task) -> Task:
    """Load a task card by name (``pointmaze-umaze``) or by path to a YAML file."""
    if isinstance(name_or_path, Task):
        return name_or_path
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return Task.from_yaml(path)
    candidate = ENVS_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise ValueError(f"Unknown task {str(name_or_path)!r}. Known tasks: {', '.join(available_tasks())} "
                         f"(task cards live in {ENVS_DIR}).")
    return Task.from_yaml(candidate)
