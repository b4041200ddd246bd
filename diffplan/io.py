"""Planner folders: JSON configs + safetensors weights (hashed), diffplan classes only, safe atomic replacement."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors.torch import load, save_file
from torch import nn

from diffplan.configurable import class_path, resolve_saved_class
from diffplan.scratch import clean_stale, make_scratch

CONFIG, WEIGHTS = "config.json", "weights.safetensors"
SHA256 = "_sha256"  # config.json key: sha256 of weights.safetensors, checked on load when present
# A folder describes itself as ours by one of these JSON files holding its key; only these names and subfolders
# of the same kind may sit in a folder that a save replaces without ``overwrite=True``.
MARKERS = {"planner.json": "_class_name", CONFIG: "_class_name", "schedule.json": "segments"}
OWN_FILES = {*MARKERS, WEIGHTS, "README.md", "training.json"}
SCRATCH_MARKER = ".diffplan-scratch"  # JSON {"target", "host", "pid"} of the write, inside each scratch folder
STALE_SECONDS = 24 * 3600  # scratch folders of other hosts (shared disks) are removed after this age


class PlannerFolderError(ValueError):
    """A planner folder is missing, incomplete, corrupt, or made for something else."""


class FolderExistsError(PlannerFolderError, FileExistsError):
    """A save would replace something that is not a folder diffplan wrote."""


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
    """``folder/weights.safetensors`` + ``folder/config.json`` ({"_class_name", "_sha256", **module.config})."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    write_json(folder / CONFIG, {"_class_name": class_path(module), SHA256: digest, **module.config})


def load_module(folder: Path, allowed_classes: Iterable[str | type] = ()) -> nn.Module:
    """Rebuild the module that ``save_module`` wrote; ``allowed_classes`` trusts classes outside diffplan."""
    config = read_json(folder / CONFIG)
    cls = resolve_saved_class(config.pop("_class_name", ""), nn.Module, allowed_classes, source=str(folder / CONFIG))
    expected = config.pop(SHA256, None)  # folders saved before hashes were recorded have none
    weights = folder / WEIGHTS
    if not weights.exists():
        raise PlannerFolderError(f"{weights} is missing: the planner folder is incomplete.")
    data = weights.read_bytes()
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise PlannerFolderError(f"{weights} is truncated or corrupt: its sha256 differs from the one recorded in "
                                 f"{folder / CONFIG}; re-download or re-export the planner.")
    try:
        state = load(data)
    except Exception as err:
        raise PlannerFolderError(f"{weights} could not be read ({err}); the file is truncated or corrupt.") from err
    module = cls(**config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise PlannerFolderError(f"Weights in {weights} do not fit {cls.__name__}({config}): {err}") from err
    return module


def _describes_itself(folder: Path) -> bool:
    for name, key in MARKERS.items():
        try:
            if key in json.loads((folder / name).read_text()):
                return True
        except (OSError, ValueError, TypeError):
            continue
    return False


def _foreign_entries(folder: Path, prefix: str = "") -> list[str]:
    """Names under ``folder`` that no diffplan save writes (other files, symlinks, folders that are not ours)."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = prefix + entry.name
        if entry.is_symlink() or (entry.is_file() and entry.name not in OWN_FILES):
            foreign.append(name)
        elif entry.is_dir():
            foreign += _foreign_entries(entry, name + "/") if _describes_itself(entry) else [name + "/"]
    return foreign


def check_replaceable(path: str | Path, overwrite: bool = False) -> None:
    """Raise ``FolderExistsError`` unless a save may replace ``path``.

    Rules: a missing path or an empty folder may be written. A folder diffplan wrote (planner.json or
    config.json with ``_class_name``, or a schedule.json, at every level) holding nothing else is replaced, as a
    re-export. A diffplan folder that also holds other files (a run root with checkpoints/, user notes) is replaced
    only with ``overwrite=True``, which deletes those files. Anything else (a file, a symlink, a folder of user
    files) is never replaced: pick another path or remove it yourself.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise FolderExistsError(f"{path} exists and is not a folder; save to another path or remove it yourself.")
    if not any(path.iterdir()):
        return
    if not _describes_itself(path):
        raise FolderExistsError(f"{path} exists and is not a planner folder, so diffplan will not replace it; "
                                f"save to a new path or remove the folder yourself.")
    foreign = _foreign_entries(path)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FolderExistsError(f"{path} is a planner folder but also holds files diffplan did not write ({shown}); "
                                f"save to a new path, move them out, or pass overwrite=True to delete them.")


@contextmanager
def atomic_folder(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty scratch folder; on success it replaces ``path`` by rename, on error it is removed.

    ``path`` must be replaceable (see ``check_replaceable``; checked before and after the write). Scratch folders
    are marked with their writer (``diffplan.scratch``); those of dead writers beside ``path`` are removed here,
    and a previous version that a killed swap had moved aside is put back.
    """
    path = Path(path)
    if path.parent.is_dir():
        clean_stale(path.parent)
    check_replaceable(path, overwrite)
    scratch = make_scratch(path.parent, restore_to=path)
    try:
        (scratch / "new").mkdir()
        yield scratch / "new"
        check_replaceable(path, overwrite)
        if path.exists():
            os.replace(path, scratch / "old")
        os.replace(scratch / "new", path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
