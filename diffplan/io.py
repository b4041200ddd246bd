"""Planner folders: JSON configs + safetensors weights, classes resolved by import path. No pickles."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from diffplan.configurable import class_path, resolve_class

CONFIG, WEIGHTS = "config.json", "weights.safetensors"


class PlannerFolderError(ValueError):
    """A planner folder is missing, incomplete, corrupt, or made for something else."""


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise PlannerFolderError(f"{path} is missing: the folder is incomplete. Re-export it with "
                                 f"`Planner.save_pretrained` or `diffplan fit ... --export`.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PlannerFolderError(f"{path} is not valid JSON ({err}); the folder is corrupt.") from err


def save_module(module: nn.Module, folder: Path) -> None:
    """``folder/config.json`` ({"_class_name", **module.config}) + ``folder/weights.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG, {"_class_name": class_path(module), **module.config})
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))


def load_module(folder: Path) -> nn.Module:
    config = read_json(folder / CONFIG)
    cls = resolve_class(config.pop("_class_name", ""), nn.Module)
    weights = folder / WEIGHTS
    if not weights.exists():
        raise PlannerFolderError(f"{weights} is missing: the planner folder is incomplete.")
    try:
        state = load_file(str(weights))
    except Exception as err:
        raise PlannerFolderError(f"{weights} could not be read ({err}); the file is truncated or corrupt.") from err
    module = cls(**config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise PlannerFolderError(f"Weights in {weights} do not fit {cls.__name__}({config}): {err}") from err
    return module


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a scratch folder; on success it replaces ``path`` in one rename, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    scratch.chmod(0o755)  # mkdtemp makes 0700 folders; a planner folder is ordinary shared data
    try:
        yield scratch
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(scratch, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(scratch, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
