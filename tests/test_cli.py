"""End to end through the console script: fit a few steps, export, evaluate, record, plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffplan.cli import main
from diffplan.evaluation.results import read_rows


def test_fit_export_evaluate(tiny_dataset, tmp_path, caplog, recwarn):
    out = tmp_path / "run"
    main(["fit", "--model", "diffplan.algorithms.diffuser.Diffuser",
          "--model.denoiser_kwargs", '{"dim": 8, "dim_mults": [1, 2]}', "--model.num_train_timesteps", "20",
          "--data", "diffplan.data.datamodule.PlanningDataModule",
          "--data.task", "pointmaze-umaze", "--data.horizon", "16", "--data.stride", "2", "--data.batch_size", "8",
          "--data.progress", "false", "--trainer.max_steps", "4", "--trainer.accelerator", "cpu",
          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(out), "--export", str(out / "planner"),
          "--planner", '{"num_inference_steps": 3}'])
    assert (out / "planner" / "planner.json").exists()
    assert not [r for r in caplog.records if "Tip:" in r.getMessage()]  # Lightning's product tips are hidden
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
    results = tmp_path / "results.csv"
    main(["evaluate", str(out / "planner"), "--task", "pointmaze-umaze", "--episodes", "2", "--num-envs", "2",
          "--results", str(results), "--quiet", "--set", "replan_every=100"])
    rows = read_rows(results)
    assert len(rows) == 1 and rows[0]["task"] == "pointmaze-umaze" and rows[0]["replan_every"] == "100"
    assert 'set={"replan_every": 100}' in rows[0]["notes"]  # the row records the settings it overrode
    assert float(rows[0]["plan_ms_b1"]) > 0
    # open loop (one plan per 100 steps): a step costs far less than a plan
    assert 0 < float(rows[0]["act_ms_b1"]) < float(rows[0]["plan_ms_b1"])
    assert rows[0]["planner"] == "run"  # runs/<run>/planner is named by its run folder
    assert (tmp_path / "figures" / "run-pointmaze-umaze.png").stat().st_size > 10_000


def test_evaluate_writes_outside_the_tracked_benchmarks_by_default_one_figure_per_protocol(diffuser_planner, tmp_path, monkeypatch):
    diffuser_planner.save_pretrained(tmp_path / "umaze-small" / "planner")
    monkeypatch.chdir(tmp_path)
    main(["evaluate", "umaze-small/planner", "--episodes", "1", "--num-envs", "1", "--quiet"])
    rows = read_rows(tmp_path / "runs" / "eval" / "pointmaze" / "results.csv")
    assert [r["planner"] for r in rows] == ["umaze-small"]
    figures = tmp_path / "runs" / "eval" / "pointmaze" / "figures"
    assert (figures / "umaze-small-pointmaze-umaze.png").exists()
    assert not (tmp_path / "benchmarks").exists()
    task_figure = (figures / "umaze-small-pointmaze-umaze.png").read_bytes()
    main(["evaluate", "umaze-small/planner", "--episodes", "1", "--num-envs", "1", "--quiet",
          "--protocol", "random_pairs"])
    assert (figures / "umaze-small-pointmaze-umaze-random_pairs.png").exists()
    assert (figures / "umaze-small-pointmaze-umaze.png").read_bytes() == task_figure  # not overwritten


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("args", "message"), [
    (["--num-envs", "0"], "--num-envs must be at least 1, got 0"),
    (["--episodes", "-1"], "--episodes must be at least 1, got -1"),
    (["--set", "foo"], "--set expects KEY=VALUE"),
    (["--set", "num_inference_steps=ten"], "--set num_inference_steps='ten': expected type int"),
    (["--set", "action_source=teleport"], "--set action_source=teleport: action_source must be one of"),
    (["--set", "num_inference_step=5"], "Unknown planner settings ['num_inference_step']"),
    (["--guidance", "{method: tfg}"], "--guidance expects a JSON object with a \"method\" key"),
    (["--guidance", '"tfg"'], "--guidance expects a JSON object with a \"method\" key"),
    (["--guidance", '{"method": "tfg"}'], "Guidance 'tfg' takes \"objective\""),
])
def test_bad_evaluate_arguments_are_one_clear_line(diffuser_planner, tmp_path, capsys, args, message):
    diffuser_planner.save_pretrained(tmp_path / "planner")
    err = one_line_error(capsys, ["evaluate", str(tmp_path / "planner"), "--no-record", *args])
    assert err.startswith("diffplan: error: ") and message in err


def test_set_values_are_json_else_strings():
    from diffplan.cli import parse_overrides

    assert parse_overrides(["n=5", "scale=0.5", "jit=true", "dims=[0, 1]", "source=tracker", "empty="]) == {
        "n": 5, "scale": 0.5, "jit": True, "dims": [0, 1], "source": "tracker", "empty": ""}


@pytest.mark.parametrize("command", [["evaluate"], ["data", "generate"]])
def test_help_lists_the_tasks_and_defaults(capsys, command):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "pointmaze-umaze" in out and "hopper-medium" in out
    if command == ["evaluate"]:
        assert "(default: 20)" in out and "(default: 10)" in out and "--notes" in out


def test_fit_hierarchical_from_the_command_line(tiny_dataset, tmp_path):
    level = '{"denoiser_kwargs": {"dim": 8, "dim_mults": [1, 2]}, "num_train_timesteps": 20}'
    main(["fit", "--model", "diffplan.algorithms.hierarchical.HierarchicalDiffuser", "--model.jump", "3",
          "--model.high_kwargs", level, "--model.low_kwargs", level,
          "--data", "diffplan.algorithms.hierarchical.HierarchicalDataModule", "--data.task", "pointmaze-umaze",
          "--data.horizon", "4", "--data.jump", "3", "--data.batch_size", "8", "--data.progress", "false",
          "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
          "--export", str(tmp_path / "hd"), "--planner", '{"high": {"num_inference_steps": 3}}'])
    from diffplan import Planner

    planner = Planner.from_pretrained(tmp_path / "hd")
    assert type(planner).__name__ == "HierarchicalPlanner" and planner.high.num_inference_steps == 3
    assert (tmp_path / "hd" / "high" / "planner.json").exists() and (tmp_path / "hd" / "low" / "denoiser").is_dir()


def test_cli_errors_are_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "diffplan.cli", "data", "generate", "pointmaze-umaze", "--steps", "0",
                           "--dataset-id", "diffplan/test/cli-v0"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--steps must be a positive" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "diffplan.cli", "evaluate", str(tmp_path / "missing")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "diffplan.cli", "data", "generate", "pointmaze-nowhere"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Unknown task" in proc.stderr


@pytest.mark.slow
def test_fit_runs_under_ddp_with_two_cpu_processes(tiny_dataset, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "diffplan.cli", "fit", "--model", "diffplan.algorithms.diffuser.Diffuser",
                           "--model.denoiser_kwargs", '{"dim": 8, "dim_mults": [1, 2]}',
                           "--data", "diffplan.data.datamodule.PlanningDataModule", "--data.task", "pointmaze-umaze",
                           "--data.horizon", "16", "--data.batch_size", "8", "--trainer.max_steps", "3",
                           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                           "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
                           "--export", str(tmp_path / "planner")], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stderr + proc.stdout
    assert "MEMBER: 2/2" in log and "Starting with 2 processes" in log, log[-2000:]
    assert (tmp_path / "planner" / "planner.json").exists()


SMALL = '{"dim": 8, "dim_mults": [1, 2]}'
LEVEL = '{"denoiser_kwargs": {"dim": 8, "dim_mults": [1, 2]}, "num_train_timesteps": 20}'
MODELS = {
    "diffuser": ["--model", "diffplan.algorithms.diffuser.Diffuser", "--model.denoiser_kwargs", SMALL,
                 "--data", "diffplan.data.datamodule.PlanningDataModule", "--data.horizon", "16", "--data.stride", "2"],
    "decision_diffuser": ["--model", "diffplan.algorithms.decision_diffuser.DecisionDiffuser",
                          "--model.denoiser_kwargs", SMALL, "--data", "diffplan.data.datamodule.PlanningDataModule",
                          "--data.horizon", "8", "--data.stride", "1"],
    "hierarchical": ["--model", "diffplan.algorithms.hierarchical.HierarchicalDiffuser", "--model.jump", "3",
                     "--model.high_kwargs", LEVEL, "--model.low_kwargs", LEVEL,
                     "--data", "diffplan.algorithms.hierarchical.HierarchicalDataModule", "--data.horizon", "4",
                     "--data.jump", "3"],
}


def fit_args(tmp_path, model: str = "diffuser", *extra: str) -> list[str]:
    return ["fit", *MODELS[model], "--data.task", "pointmaze-umaze", "--data.batch_size", "8",
            "--data.progress", "false", "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--export", str(tmp_path / "planner"), *extra]


def fit_error(capsys, argv: list[str]) -> str:
    """The fit error ends with a one-line usage, then ``diffplan: error: <cause>``."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and lines[-2].startswith("usage: diffplan fit"), lines
    assert lines[-1].startswith("diffplan: error: ") and not any(line.startswith("  ") for line in lines), lines
    return lines[-1]


def test_conflicting_trainer_arguments_fail_in_one_line(tiny_dataset, tmp_path, capsys):
    argv = fit_args(tmp_path, "diffuser", "--trainer.enable_checkpointing", "false", "--trainer.callbacks",
                    "lightning.pytorch.callbacks.ModelCheckpoint")
    assert "enable_checkpointing=False" in fit_error(capsys, argv)


@pytest.mark.parametrize(("model", "planner", "typo"), [
    ("diffuser", '{"num_inference_step": 5}', "num_inference_step"),
    ("decision_diffuser", '{"num_inference_steps": 5, "guidance_scal": 1.2}', "guidance_scal"),
    ("hierarchical", '{"high": {"num_inference_step": 3}}', "num_inference_step"),
    ("hierarchical", '{"low": {"num_inference_steps": 3}, "replan_evry": 4}', "replan_evry"),
])
def test_a_typo_in_planner_settings_fails_before_training(tiny_dataset, tmp_path, capsys, model, planner, typo):
    err = fit_error(capsys, fit_args(tmp_path, model, "--planner", planner))
    assert "--planner" in err and typo in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "planner").exists()  # nothing trained


def test_max_steps_zero_is_refused(tiny_dataset, tmp_path, capsys):
    err = fit_error(capsys, [*fit_args(tmp_path), "--trainer.max_steps", "0"])
    assert "no optimizer step" in err and not (tmp_path / "planner").exists()


def test_resume_from_last_without_a_checkpoint_says_where_it_looked(tiny_dataset, tmp_path, capsys):
    err = fit_error(capsys, [*fit_args(tmp_path), "--ckpt_path", "last"])
    assert "no last checkpoint found in" in err and str(tmp_path) in err and not (tmp_path / "planner").exists()


def test_a_bad_fit_argument_ends_with_its_cause(tiny_dataset, tmp_path, capsys):
    err = fit_error(capsys, [*fit_args(tmp_path), "--model.horizn", "3"])
    assert "horizn" in err and "is not accepted" in err
    err = fit_error(capsys, [*fit_args(tmp_path), "--trainer.max_stepz", "3"])
    assert "unrecognized arguments: --trainer.max_stepz 3" in err
    err = fit_error(capsys, [*fit_args(tmp_path), "--data.task", "pointmaze-nowhere"])
    assert "Unknown task 'pointmaze-nowhere'" in err


def test_export_into_the_runs_own_root_or_a_user_folder_is_refused_before_training(tiny_dataset, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    err = fit_error(capsys, [*fit_args(tmp_path), "--export", str(tmp_path)])
    assert "keeps its checkpoints or logs" in err
    user = tmp_path / "results"
    user.mkdir()
    (user / "table.csv").write_text("a,b\n")
    err = fit_error(capsys, [*fit_args(tmp_path), "--export", str(user)])
    assert "not a planner folder" in err
    assert (tmp_path / "notes.txt").read_text() == "mine" and (user / "table.csv").exists()
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_evaluate_takes_a_guidance_spec_and_records_it_in_the_row(diffuser_planner, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "planner")
    spec = '{"method": "tfg", "objective": {"type": "reach", "target": [3.0, 1.0]}}'
    main(["evaluate", str(tmp_path / "planner"), "--episodes", "1", "--num-envs", "1", "--quiet", "--guidance", spec,
          "--results", str(tmp_path / "results.csv"), "--plot", str(tmp_path / "paths.png")])
    (row,) = read_rows(tmp_path / "results.csv")
    assert f"guidance={spec}" in row["notes"]


def test_evaluate_records_the_folders_guidance_and_none_drops_it(diffuser_planner, tmp_path):
    box = {"type": "avoid_box", "lo": [-2.5, -2.5], "hi": [2.5, 2.5]}  # the whole maze: every path is inside
    spec = {"method": "select", "n": 2, "objective": box}
    diffuser_planner.guidance = spec
    diffuser_planner.save_pretrained(tmp_path / "planner")
    diffuser_planner.guidance = None
    results = tmp_path / "results.csv"
    for flag in ([], ["--guidance", "none"]):
        main(["evaluate", str(tmp_path / "planner"), "--episodes", "1", "--num-envs", "1", "--quiet", *flag,
              "--results", str(results), "--plot", str(tmp_path / "paths.png")])
    folders, dropped = read_rows(results)
    assert f"guidance={json.dumps(spec)}" in folders["notes"]
    assert "guidance=none" in dropped["notes"]
    assert folders["violation"] == "1" and dropped["violation"] == ""  # the region comes from the guidance in use


def test_evaluate_random_pairs_records_protocol_controller_share_and_the_guidance_violation(diffuser_planner, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "planner")
    box = {"type": "avoid_box", "lo": [-2.5, -2.5], "hi": [2.5, 2.5]}  # the whole maze: every path is inside
    spec = json.dumps({"method": "select", "n": 2, "objective": [{"type": "reach", "target": [1.0, 1.0]}, box]})
    results = tmp_path / "results.csv"
    main(["evaluate", str(tmp_path / "planner"), "--episodes", "1", "--num-envs", "1", "--quiet", "--guidance", spec,
          "--protocol", "random_pairs", "--set", "replan_every=0", "--results", str(results), "--plot",
          str(tmp_path / "a.png")])
    main(["evaluate", str(tmp_path / "planner"), "--episodes", "1", "--num-envs", "1", "--quiet", "--results",
          str(results), "--plot", str(tmp_path / "b.png"), "--set", "replan_every=0", "--violation",
          '{"type": "avoid_disc", "center": [9.0, 9.0], "radius": 0.5}'])
    guided, plain = read_rows(results)
    assert guided["protocol"] == "random_pairs" and float(guided["controller_share"]) >= 0
    assert guided["violation"] == "1" and "violation=" in guided["notes"]
    assert plain["protocol"] == "task" and plain["controller_share"] == "" and plain["violation"] == "0"


def test_a_violation_without_a_region_is_one_clear_line(diffuser_planner, tmp_path, capsys):
    diffuser_planner.save_pretrained(tmp_path / "planner")
    err = one_line_error(capsys, ["evaluate", str(tmp_path / "planner"), "--no-record", "--violation",
                                  '{"type": "reach", "target": [1.0, 1.0]}'])
    assert "needs an 'avoid_box' or 'avoid_disc' objective" in err


def test_a_planner_exported_from_a_checkpoint_holds_its_averaged_weights(tiny_dataset, tmp_path):
    """``--ckpt_path <step N> --trainer.max_steps N --export``: no training step, the checkpoint's EMA weights."""
    import torch
    from safetensors.torch import load_file

    callbacks = {"trainer": {"callbacks": [
        {"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": 0.5}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(tmp_path / "ckpt"), "every_n_train_steps": 3, "save_top_k": -1}}]}}
    config = tmp_path / "callbacks.yaml"
    config.write_text(json.dumps(callbacks))  # YAML reads JSON
    main([*fit_args(tmp_path / "a", "diffuser", "--config", str(config)), "--trainer.max_steps", "6"])
    checkpoint = torch.load(tmp_path / "ckpt" / "epoch=0-step=3.ckpt", map_location="cpu", weights_only=False)
    main([*fit_args(tmp_path / "b", "diffuser", "--config", str(config)), "--trainer.max_steps", "3",
          "--ckpt_path", str(tmp_path / "ckpt" / "epoch=0-step=3.ckpt")])
    exported = load_file(tmp_path / "b" / "planner" / "denoiser" / "weights.safetensors")
    averaged, raw = ({k.removeprefix("denoiser."): v for k, v in state.items() if k.startswith("denoiser.")}
                     for state in (checkpoint["state_dict"], checkpoint["current_model_state"]))
    assert exported.keys() == averaged.keys()
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)
    assert not all(torch.equal(averaged[k], raw[k]) for k in averaged)  # the two differ, so the check can fail


@pytest.mark.parametrize(("script", "extra"), [
    ("pointmaze/goal_hold.py", []),
    ("guidance/search.py", ["--objective", '{"type": "reach", "target": [1.0, 1.0]}']),
    ("guidance/region.py", []),
    ("guidance/new_goal.py", []),
])
def test_benchmark_scripts_report_a_bad_set_as_one_usage_line(script, extra, benchmark_script, diffuser_planner,
                                                              tmp_path, capsys, monkeypatch):
    """The scripts read --set as `diffplan evaluate` does (diffplan.cli.load_planner): a usage error, no traceback."""
    diffuser_planner.save_pretrained(tmp_path / "planner")
    argv = [str(tmp_path / "planner"), *extra, "--set", "num_inference_steps=ten"]
    monkeypatch.setattr("sys.argv", [script, *argv])
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / Path(script).parent))
    with pytest.raises(SystemExit) as exit_info:
        benchmark_script(script).main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and "--set num_inference_steps='ten': expected type int" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_init_weights_starts_a_fit_from_a_planner_folder(tiny_dataset, tmp_path):
    from diffplan.planner import Planner

    main(fit_args(tmp_path / "a"))
    frozen = ["--model.learning_rate", "0.0", "--trainer.max_steps", "1"]  # an optimizer step that changes nothing
    main([*fit_args(tmp_path / "b"), *frozen, "--init_weights", str(tmp_path / "a" / "planner")])
    main([*fit_args(tmp_path / "c"), *frozen, "--seed_everything", "1"])
    first, fine_tuned, fresh = (Planner.from_pretrained(tmp_path / run / "planner") for run in "abc")
    for name, value in first.denoiser.state_dict().items():
        assert torch.equal(fine_tuned.denoiser.state_dict()[name], value), name
    assert not all(torch.equal(fresh.denoiser.state_dict()[n], v) for n, v in first.denoiser.state_dict().items())


def test_init_weights_refuses_another_planner_class_or_a_checkpoint_beside_it(tiny_dataset, tmp_path, capsys):
    main(fit_args(tmp_path / "dd", "decision_diffuser"))
    err = fit_error(capsys, [*fit_args(tmp_path / "d"), "--init_weights", str(tmp_path / "dd" / "planner")])
    assert "holds a DecisionDiffuserPlanner" in err and "DiffuserPlanner" in err
    err = fit_error(capsys, [*fit_args(tmp_path / "d"), "--init_weights", str(tmp_path / "nowhere")])
    assert "--init_weights" in err
    err = fit_error(capsys, [*fit_args(tmp_path / "d"), "--init_weights", str(tmp_path / "dd" / "planner"),
                             "--ckpt_path", str(tmp_path / "x.ckpt")])
    assert "both set the weights" in err
    assert not (tmp_path / "d" / "planner").exists()
