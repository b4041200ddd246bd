"""Planner folders on disk: what a save may replace, scratch clean-up, trusted classes, weight hashes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import diffplan
from diffplan import Planner
from diffplan.configurable import Configurable, UntrustedClassError
from diffplan.io import (
    FolderExistsError,
    PlannerFolderError,
    atomic_folder,
    load_module,
    save_module,
)
from diffplan.nn.inverse_dynamics import InverseDynamics
from diffplan.scratch import MARK, PREFIX


class UserHead(nn.Module, Configurable):
    """A component class defined outside diffplan (here: in the tests), as a user's own would be."""

    def __init__(self, width: int = 3):
        super().__init__()
        self.save_config(locals())
        self.linear = nn.Linear(width, 1)


def small_module() -> InverseDynamics:
    torch.manual_seed(0)
    return InverseDynamics(obs_dim=4, act_dim=2, hidden=8)


def scratch_folders(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(PREFIX)]


# -- what a save may replace ----------------------------------------------------------------------------------
def test_save_never_replaces_a_folder_of_user_files(diffuser_planner, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FolderExistsError, match="not a planner folder") as err:
            diffuser_planner.save_pretrained(target, overwrite=overwrite)
        assert "\n" not in str(err.value)
    assert (target / "notes.txt").read_text() == "keep me" and sorted(tmp_path.iterdir()) == [target]


def test_save_to_an_existing_file_is_refused(tmp_path):
    target = tmp_path / "planner"
    target.write_text("a file")
    with pytest.raises(FileExistsError, match="not a folder"), atomic_folder(target, overwrite=True):
        pass
    assert target.read_text() == "a file"


def test_resave_replaces_a_planner_folder(diffuser_planner, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "p", train_steps=1)
    diffuser_planner.save_pretrained(tmp_path / "p", train_steps=2)
    assert Planner.training_metadata(tmp_path / "p")["train_steps"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_hierarchical_planner_folder_is_replaceable(hierarchical_planner, tmp_path):
    hierarchical_planner.save_pretrained(tmp_path / "hd", train_steps=1)
    hierarchical_planner.save_pretrained(tmp_path / "hd", train_steps=2)
    assert Planner.training_metadata(tmp_path / "hd")["train_steps"] == 2


def test_planner_folder_with_foreign_files_needs_overwrite(diffuser_planner, tmp_path):
    """A run root that holds an export and checkpoints: the checkpoints survive unless overwrite=True."""
    run = tmp_path / "run"
    diffuser_planner.save_pretrained(run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    with pytest.raises(FolderExistsError, match=r"did not write \(checkpoints/\).*overwrite=True"):
        diffuser_planner.save_pretrained(run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    diffuser_planner.save_pretrained(run, overwrite=True)
    assert not (run / "checkpoints").exists() and type(Planner.from_pretrained(run)) is type(diffuser_planner)


def test_component_folder_is_replaced_by_default(tmp_path):
    for _ in range(2):
        with atomic_folder(tmp_path / "policy") as tmp:
            save_module(small_module(), tmp)
    assert sorted(p.name for p in (tmp_path / "policy").iterdir()) == ["config.json", "weights.safetensors"]


# -- scratch folders of killed writes -------------------------------------------------------------------------
def test_scratch_of_a_killed_write_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "policy"
    script = ("import os, sys; from diffplan.io import atomic_folder\n"
              "with atomic_folder(sys.argv[1]) as tmp:\n    (tmp / 'partial').write_text('x')\n"
              "    os.kill(os.getpid(), 9)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(diffplan.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", script, str(target)], env=env, capture_output=True, check=False)
    assert proc.returncode == -9 and len(scratch_folders(tmp_path)) == 1
    user = tmp_path / f"{PREFIX}notes"  # looks like a scratch folder but has no marker: never ours to delete
    user.mkdir()
    live = tmp_path / f"{PREFIX}live"  # a write still running (this process)
    live.mkdir()
    (live / MARK).write_text(json.dumps({"restore_to": str(target), "host": socket.gethostname(),
                                         "pid": os.getpid()}))
    with atomic_folder(target) as tmp:
        save_module(small_module(), tmp)
    assert sorted(scratch_folders(tmp_path)) == [live, user]
    assert load_module(target).config == small_module().config


def test_previous_folder_of_a_write_killed_mid_swap_is_restored(tmp_path):
    """Killed between its two renames, a write leaves the previous folder in its scratch; the next write of the
    same target puts it back before anything else, so even a failing next write leaves the planner in place."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    scratch = tmp_path / f"{PREFIX}abc123"
    save_module(small_module(), scratch / "old")
    (scratch / MARK).write_text(json.dumps({"restore_to": str(tmp_path / "policy"), "host": socket.gethostname(),
                                            "pid": dead.pid}))
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "policy"):
        raise RuntimeError("the new write fails too")
    assert load_module(tmp_path / "policy").config == small_module().config
    assert scratch_folders(tmp_path) == []


# -- classes named by a folder --------------------------------------------------------------------------------
HELPERS = "from pathlib import Path\nPath({marker!r}).write_text('imported')\nclass Evil:\n    pass\n"


@pytest.mark.parametrize("name, match", [
    ("this.Zen", "outside diffplan"),
    ("os.system", "outside diffplan"),
    ("helpers_xyz.Evil", "outside diffplan"),
    ("torch.nn.Linear", "outside diffplan"),
    ("diffplan.planner.Path", "defined in pathlib"),
])
@pytest.mark.parametrize("file", ["planner.json", "denoiser/config.json"])
def test_hostile_class_names_are_refused_before_import(diffuser_planner, tmp_path, monkeypatch, capsys, name, match,
                                                        file):
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "imported.txt"
    (code / "helpers_xyz.py").write_text(HELPERS.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(code))
    diffuser_planner.save_pretrained(tmp_path / "p")
    config = json.loads((tmp_path / "p" / file).read_text())
    (tmp_path / "p" / file).write_text(json.dumps({**config, "_class_name": name}))
    before = set(sys.modules)
    with pytest.raises(UntrustedClassError, match=match) as err:
        Planner.from_pretrained(tmp_path / "p")
    assert file in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists() and "helpers_xyz" not in sys.modules and "this" not in sys.modules
    assert set(sys.modules) - before == set() and capsys.readouterr().out == ""


def test_allowed_classes_trust_a_user_class(tmp_path):
    save_module(UserHead(width=5), tmp_path / "head")
    with pytest.raises(UntrustedClassError, match=r"allowed_classes=\[.*UserHead'\]"):
        load_module(tmp_path / "head")
    name = json.loads((tmp_path / "head" / "config.json").read_text())["_class_name"]
    for allowed in ([UserHead], [name]):
        head = load_module(tmp_path / "head", allowed_classes=allowed)
        assert isinstance(head, UserHead) and head.config == {"width": 5}


def test_allowed_classes_must_still_fit_the_base(tmp_path):
    save_module(small_module(), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "_class_name": "pathlib.Path"}))
    with pytest.raises(ValueError, match="not a subclass of Module"):
        load_module(tmp_path / "m", allowed_classes=["pathlib.Path"])


# -- weight hashes --------------------------------------------------------------------------------------------
def test_weights_corrupted_in_place_are_refused(diffuser_planner, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "p")
    weights = tmp_path / "p" / "denoiser" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor: same size, header intact, so safetensors alone would load it
    weights.write_bytes(bytes(data))
    with pytest.raises(PlannerFolderError, match=r"denoiser/weights\.safetensors is truncated or corrupt: its sha256"):
        Planner.from_pretrained(tmp_path / "p")


def test_folders_saved_without_hashes_still_load(tmp_path):
    module = small_module()
    save_module(module, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert len(config.pop("_sha256")) == 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load_module(tmp_path / "m")
    for (k, v), (k2, v2) in zip(module.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
