"""benchmarks/guidance/search.py end to end on a tiny planner: CSV rows, the printed spec, the seed guard."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from diffplan.guidance.spec import guidance_from_spec

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "guidance" / "search.py"


def load_script():
    spec = importlib.util.spec_from_file_location("guidance_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_scored_search_writes_every_candidate_and_prints_a_usable_spec(diffuser_planner, tmp_path, capsys):
    script = load_script()
    diffuser_planner.save_pretrained(tmp_path / "planner")
    objective = {"type": "reach", "target": [1.0, 1.0]}
    out = tmp_path / "search.csv"
    script.main([str(tmp_path / "planner"), "--objective", json.dumps(objective), "--score", "plan", "--episodes",
                 "2", "--rounds", "1", "--base", '{"iter_steps": 1}', "--csv", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["round"] == "-1" and rows[0]["spec"] == ""  # the unguided reference
    assert rows[1]["round"] == "0" and (rows[1]["rho"], rows[1]["mu"], rows[1]["gamma"]) == ("0.25", "0.25", "0.001")
    assert 3 <= len(rows) <= 2 + 2 * 3 and {r["round"] for r in rows[2:]} == {"1"}
    best = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    searched = [r for r in rows if r["round"] != "-1"]
    top = max(searched, key=lambda r: float(r["value"]))
    assert json.loads(top["spec"]) == best and best["objective"] == objective and best["iter_steps"] == 1
    guidance_from_spec(best, diffuser_planner)  # ready for --guidance


def test_search_refuses_test_seeds(tmp_path):
    script = load_script()
    with pytest.raises(SystemExit):
        script.main([str(tmp_path), "--objective", "{}", "--seed", "995", "--episodes", "10"])


def test_rollout_scorer_steers_only_while_scoring(diffuser_planner):
    script = load_script()
    score = script.rollout_scorer(diffuser_planner, diffuser_planner.task, episodes=1, seed=0, num_envs=1)
    spec = script.tfg_spec({"rho": 0.25, "mu": 0.25, "gamma": 0.001}, {"type": "reach", "target": [1.0, 1.0]},
                           {"iter_steps": 1})
    metrics = score(spec)
    assert {"score_mean", "success", "plan_ms_b1"} <= set(metrics) and diffuser_planner.guidance is None


def test_table_method_names_build_specs_every_planner_accepts(diffuser_planner):
    spec = importlib.util.spec_from_file_location("guidance_methods", SCRIPT.parent / "methods.py")
    methods = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(methods)
    objective = {"type": "reach", "target": [1.0, 1.0]}
    assert methods.method_spec("none", objective) is None
    for name in methods.ALL_METHODS[1:]:
        built = guidance_from_spec(methods.method_spec(name, objective, {"mu": 0.3}), diffuser_planner)
        assert built.spec["objective"] == objective
    nested = methods.method_spec("tfg+select32", objective, {"mu": 0.3})
    assert nested["n"] == 32 and nested["guidance"] == {"method": "tfg", "mu": 0.3, "objective": objective}
    with pytest.raises(ValueError, match="Unknown method 'selectall'"):
        methods.method_spec("selectall", objective)


def test_new_goal_table_steers_a_goal_less_planner_and_writes_one_row_per_method(tiny_module, tmp_path,
                                                                                  monkeypatch, capsys):
    module, dm = tiny_module
    module.to_planner(dm.task, dm.stride, num_inference_steps=3, goal_dims=[]).save_pretrained(tmp_path / "nogoal")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("guidance_new_goal", SCRIPT.parent / "new_goal.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "rows.csv"
    monkeypatch.setattr("sys.argv", ["new_goal.py", str(tmp_path / "nogoal"), "--methods", "none", "select2",
                                     "--episodes", "2", "--seed", "0", "--results", str(out)])
    script.main()
    rows = list(csv.DictReader(out.open()))
    assert [r["planner"] for r in rows] == ["nogoal-goal-none", "nogoal-goal-select2"]
    assert all(r["protocol"] == "random_pairs" and r["controller_share"] != "" for r in rows)
    assert '"target": "goal"' in rows[1]["notes"] and "guidance" not in rows[0]["notes"]
    assert "select2" in capsys.readouterr().out
