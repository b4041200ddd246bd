"""Every planner folder shipped in pretrained/ loads, acts in its own task's environment, and says how it was made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from diffplan.environments import make_eval_env
from diffplan.planner import Planner

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent for p in (ROOT / "pretrained").glob("*/planner.json"))


def test_the_shipped_folders_are_found():
    assert {"df-pointmaze-large", "hd-pointmaze-large", "dd-hopper-medium"} <= {f.name for f in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_shipped_planner_loads_and_acts_in_its_task_env(folder: Path):
    planner = Planner.from_pretrained(folder)
    env = make_eval_env(planner.task, max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    planner.reset(seed=0)
    for _ in range(2):
        action = planner.act(obs)
        assert action.shape == env.action_space.shape and np.isfinite(action).all()
        obs, *_ = env.step(action)
    env.close()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_shipped_planner_readme_has_a_reproduce_block_and_its_command_names_existing_files(folder: Path):
    readme = (folder / "README.md").read_text()
    assert re.search(r"## Reproduce\s*\n```bash\n", readme), f"{folder.name}/README.md has no '## Reproduce' bash block"
    command = json.loads((folder / "planner.json").read_text())["command"]
    named_files = [word for word in command.split() if word.endswith((".yaml", ".sh", ".py"))]
    assert all((ROOT / f).is_file() for f in named_files), f"{folder.name}: {command!r} names a missing file"
