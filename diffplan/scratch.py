"""Scratch folders that a killed writer leaves behind are marked as ours, so the next writer can clean them up."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

PREFIX = ".diffplan-scratch-"
MARK = ".diffplan-scratch.json"
STALE_SECONDS = 24 * 3600  # scratch folders of other hosts (shared disks) are removed after this age


def make_scratch(parent: str | Path, restore_to: str | Path | None = None) -> Path:
    """A new hidden folder in ``parent``, marked with this process (and ``restore_to``, see ``clean_stale``).

    Args:
        parent: where to make it (the same filesystem as the final destination, so renames are atomic).
        restore_to: the scratch folder holds ``restore_to``'s previous content as ``old`` while it is replaced;
            if the writer dies in between, ``clean_stale`` puts it back instead of deleting it.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    mark = {"pid": os.getpid(), "host": socket.gethostname(), "restore_to": str(restore_to) if restore_to else None}
    (scratch / MARK).write_text(json.dumps(mark))
    return scratch


def clean_stale(parent: str | Path) -> list[Path]:
    """Remove marked scratch folders in ``parent`` whose writer (on this host) is gone; returns what was removed.

    Folders of live writers, of other hosts (for a day) and without our mark are left alone. A previous content that a dead
    writer had moved aside is moved back when its place is still empty.
    """
    removed = []
    for scratch in sorted(Path(parent).glob(f"{PREFIX}*")):
        try:
            mark = json.loads((scratch / MARK).read_text())
        except (OSError, ValueError):
            continue
        old_enough = time.time() - (scratch / MARK).stat().st_mtime > STALE_SECONDS
        if not old_enough and (mark.get("host") != socket.gethostname() or _alive(int(mark.get("pid", -1)))):
            continue
        target = mark.get("restore_to")
        if target and (scratch / "old").exists() and not Path(target).exists():
            os.replace(scratch / "old", target)
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(scratch)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
