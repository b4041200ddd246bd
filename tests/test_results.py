"""Benchmark results files: concurrent appends, the commit a row records, committed benchmark records."""

from __future__ import annotations

import csv
import multiprocessing
import subprocess
import time
from pathlib import Path

import pytest

import diffplan
from diffplan.evaluation import results
from diffplan.evaluation.results import COLUMNS, append_row, git_commit, is_tracked_benchmark_file, read_rows

WRITERS, ROWS_EACH = 4, 25


def _append_after(barrier, path: str, writer: int) -> None:
    barrier.wait()
    for seed in range(ROWS_EACH):
        append_row(path, {"task": f"writer-{writer}", "seed": seed})


class SlowDictWriter(csv.DictWriter):
    """Pauses before the first write of each process: every writer has looked for a header before any writes one."""

    paused = False

    def __init__(self, *args, **kwargs):
        if not SlowDictWriter.paused:
            SlowDictWriter.paused = True
            time.sleep(0.3)
        super().__init__(*args, **kwargs)


def test_concurrent_appends_write_the_header_once(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "git_commit", lambda: "abc1234")
    monkeypatch.setattr(results.csv, "DictWriter", SlowDictWriter)
    path = tmp_path / "new" / "results.csv"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_append_after, args=(barrier, str(path), i)) for i in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    lines = path.read_text().splitlines()
    assert lines.count(",".join(COLUMNS)) == 1 and lines[0] == ",".join(COLUMNS)
    rows = read_rows(path)
    assert sorted((r["task"], int(r["seed"])) for r in rows) == sorted(
        (f"writer-{i}", s) for i in range(WRITERS) for s in range(ROWS_EACH))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def _foreign_repo(root: Path) -> str:
    """A git repository with one commit that is not diffplan's; returns its short commit."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q")
    (root / "x.txt").write_text("x")
    _git(root, "add", "x.txt")
    _git(root, "commit", "-q", "-m", "foreign")
    return _git(root, "rev-parse", "--short", "HEAD")


def test_git_commit_is_diffplan_source_commit_whatever_the_cwd(tmp_path, monkeypatch):
    package = Path(diffplan.__file__).resolve().parent
    if results.source_repo() is None:
        pytest.skip("diffplan is not imported from a git checkout")
    expected = _git(package, "rev-parse", "--short", "HEAD")
    foreign = _foreign_repo(tmp_path / "elsewhere")
    for cwd in (tmp_path, tmp_path / "elsewhere"):
        monkeypatch.chdir(cwd)
        assert git_commit() == expected != foreign


@pytest.mark.parametrize("where", ["not a repository", "site-packages inside a repository", "no git program"])
def test_git_commit_outside_a_checkout_is_the_version(tmp_path, monkeypatch, where):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    package = tmp_path / "lib" / "site-packages" / "diffplan"
    if where == "site-packages inside a repository":
        _foreign_repo(tmp_path)
    package.mkdir(parents=True)
    monkeypatch.setattr(results, "PACKAGE_DIR", package)
    if where == "no git program":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_commit() == f"v{diffplan.__version__}"


def test_is_tracked_benchmark_file(tmp_path, monkeypatch):
    repo = results.source_repo()
    if repo is None:
        pytest.skip("diffplan is not imported from a git checkout")
    tracked = _git(repo, "ls-files", "benchmarks").splitlines()
    if not tracked:
        pytest.skip("this checkout tracks no benchmark files")
    monkeypatch.chdir(repo)
    assert is_tracked_benchmark_file(tracked[0]) and is_tracked_benchmark_file(repo / tracked[0])
    assert not is_tracked_benchmark_file(repo / "benchmarks" / "not-tracked-suite" / "results.csv")
    assert not is_tracked_benchmark_file(repo / "pyproject.toml")  # tracked, but not a benchmark record
    assert not is_tracked_benchmark_file(tmp_path / "benchmarks" / "results.csv")


def test_a_file_written_before_the_protocol_columns_is_upgraded_and_keeps_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "git_commit", lambda: "abc1234")
    old_columns = [c for c in COLUMNS if c not in ("protocol", "controller_share", "controller_share_se", "violation")]
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_columns)
        writer.writeheader()
        writer.writerow({"task": "pointmaze-umaze", "planner": "old", "score_mean": "101"})
    append_row(path, {"task": "pointmaze-umaze", "planner": "new", "protocol": "random_pairs", "violation": 0.25})
    old, new = read_rows(path)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert (old["planner"], old["score_mean"], old["protocol"], old["violation"]) == ("old", "101", "", "")
    assert (new["planner"], new["protocol"], new["violation"]) == ("new", "random_pairs", "0.25")
