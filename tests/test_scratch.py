"""Scratch folders left by killed writers are cleaned up at the next write; nothing else is touched."""

from __future__ import annotations

import json
import subprocess
import sys

from diffplan.scratch import MARK, clean_stale, make_scratch


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def mark_as(scratch, pid: int) -> None:
    mark = json.loads((scratch / MARK).read_text())
    (scratch / MARK).write_text(json.dumps({**mark, "pid": pid}))


def test_only_marked_scratch_of_dead_writers_is_removed(tmp_path):
    stale, live = make_scratch(tmp_path), make_scratch(tmp_path)
    mark_as(stale, dead_pid())
    unmarked = tmp_path / ".diffplan-scratch-user"  # our prefix but no mark: not provably ours
    unmarked.mkdir()
    user = tmp_path / "data"
    user.mkdir()
    assert clean_stale(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and unmarked.exists() and user.exists()


def test_a_dataset_moved_aside_by_a_killed_writer_is_restored(tmp_path):
    final = tmp_path / "diffplan" / "umaze-v0"
    final.mkdir(parents=True)
    (final / "data.hdf5").write_text("episodes")
    trash = make_scratch(tmp_path, restore_to=final)
    final.rename(trash / "old")  # killed here: the old dataset is aside, the new one not yet in place
    mark_as(trash, dead_pid())
    clean_stale(tmp_path)
    assert (final / "data.hdf5").read_text() == "episodes" and not trash.exists()


def test_write_dataset_cleans_up_a_killed_write(tiny_dataset, umaze):
    from diffplan.data.recipes import generate_dataset
    from diffplan.data.writer import datasets_root

    stale = make_scratch(datasets_root())
    mark_as(stale, dead_pid())
    generate_dataset(umaze, steps=200, seed=1, dataset_id="diffplan/test/after-kill-v0", progress=False,
                     reference_episodes=1)
    assert not stale.exists()
    assert not list(datasets_root().glob(".diffplan-scratch-*"))
