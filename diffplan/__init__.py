"""diffplan: diffusion-based planning on Minari offline-RL datasets."""

from __future__ import annotations

__version__ = "0.1.0"

from diffplan.planner import Plan, Planner
from diffplan.tasks import Task, load_task

__all__ = ["Plan", "Planner", "Task", "__version__", "load_task"]
