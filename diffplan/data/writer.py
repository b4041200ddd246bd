"""Write a Minari dataset all-or-nothing: build it in a scratch root, then move it into place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import minari
from minari.storage.datasets_root_dir import get_dataset_path

from diffplan.scratch import clean_stale, make_scratch


def datasets_root() -> Path:
    """``$MINARI_DATASETS_PATH`` or minari's default root (``~/.minari/datasets``)."""
    return Path(get_dataset_path()).resolve()


def dataset_dir(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def dataset_exists(dataset_id: str) -> bool:
    return (dataset_dir(dataset_id) / "data" / "metadata.json").exists()


def check_writable(dataset_id: str, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``dataset_id`` exists and may not be replaced; cheap, call it before collecting."""
    if dataset_exists(dataset_id) and not overwrite:
        raise FileExistsError(f"Dataset {dataset_id!r} already exists in {datasets_root()}. Pass --overwrite to "
                              f"regenerate it, or --dataset-id to write it under another id.")


def write_dataset(dataset_id: str, overwrite: bool, **create_kwargs: Any) -> minari.MinariDataset:
    """``minari.create_dataset_from_buffers`` into a scratch root, then an atomic rename into the real root.

    A crash or a bad argument never leaves a half-written dataset under ``dataset_id``; an existing dataset is
    replaced only with ``overwrite=True`` and only after the new one was written completely. Scratch folders of a
    killed earlier write are removed first (see ``diffplan.scratch``).
    """
    root = datasets_root()
    final = root / dataset_id
    check_writable(dataset_id, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale(root)
    scratch = make_scratch(root)
    previous = os.environ.get("MINARI_DATASETS_PATH")
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(scratch)
        minari.create_dataset_from_buffers(dataset_id=dataset_id, data_format="hdf5", **create_kwargs)
        os.environ.pop("MINARI_DATASETS_PATH")
        if previous is not None:
            os.environ["MINARI_DATASETS_PATH"] = previous
        _copy_namespace_metadata(scratch, root, dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            trash = make_scratch(root, restore_to=final)
            os.replace(final, trash / "old")
            os.replace(scratch / dataset_id, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(scratch / dataset_id, final)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(scratch, ignore_errors=True)
    return minari.load_dataset(dataset_id)


def _copy_namespace_metadata(scratch: Path, root: Path, dataset_id: str) -> None:
    """Namespaces (``diffplan/pointmaze``) carry a ``namespace_metadata.json`` per level; keep existing ones."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth]) / "namespace_metadata.json"
        if (scratch / rel).exists() and not (root / rel).exists():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(scratch / rel, root / rel)
