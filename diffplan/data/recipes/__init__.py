"""Dataset recipes. A recipe module exposes ``generate(task, steps, seed, overwrite, progress) -> MinariDataset``."""

from __future__ import annotations

import importlib
from typing import Any

from diffplan.data.writer import check_writable
from diffplan.tasks import Task


def generate_dataset(task: Task, steps: int | None = None, seed: int | None = None,
                     dataset_id: str | None = None, overwrite: bool = False, progress: bool = True,
                     **recipe_overrides: Any) -> Any:
    """Regenerate ``task``'s dataset with its recipe and store it with minari; returns the MinariDataset.

    ``recipe_overrides`` replace parameters of the task card's recipe (e.g. ``reference_episodes=10``).
    """
    unknown = set(recipe_overrides) - set(task.dataset.recipe_params)
    if unknown:
        raise ValueError(f"Unknown recipe parameters {sorted(unknown)} for {task.name!r}; known: "
                         f"{sorted(task.dataset.recipe_params)}.")
    params = {**task.dataset.recipe_params, **recipe_overrides}
    steps = int(params.pop("steps") if steps is None else steps)
    seed = int(params.pop("seed") if seed is None else seed)
    params.pop("steps", None)
    params.pop("seed", None)
    if steps <= 0:
        raise ValueError(f"--steps must be a positive number of environment steps, got {steps}.")
    dataset_id = dataset_id or task.dataset.local_id
    check_writable(dataset_id, overwrite)  # before the collection, which may take hours
    recipe = importlib.import_module(task.dataset.recipe)
    return recipe.generate(task, steps=steps, seed=seed, dataset_id=dataset_id,
                           overwrite=overwrite, progress=progress, **params)
