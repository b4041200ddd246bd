"""The rows of issue 13's tables: a method name -> the guidance spec it stands for, for one objective.

Names: ``none`` (unguided), ``dps lgd freedom mpgd ugd`` (the presets at their defaults), ``tfg`` (TFG with the
hyper-parameters given, e.g. the setting ``search.py`` found on validation seeds), ``select<N>`` (best of N plain
plans by the objective), ``tfg+select<N>`` (best of N TFG-guided plans) and ``waypoints`` (goal replaced by a
waypoint on a route round the objective's ``avoid_box`` boxes; ``waypoints+<method>`` steers toward it with
another method).
"""

from __future__ import annotations

import json
from typing import Any

from diffplan import Planner
from diffplan.evaluation.results import append_row, result_row
from diffplan.evaluation.rollout import EvaluationResult, evaluate

PRESETS = ("dps", "lgd", "freedom", "mpgd", "ugd")
ALL_METHODS = ("none", *PRESETS, "tfg", "select8", "select32", "tfg+select32")


def method_spec(method: str, objective: Any, tfg: dict[str, Any] | None = None,
                waypoints: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The guidance spec of ``method`` for ``objective`` (an objective spec); None for ``none``. ``tfg`` and
    ``waypoints`` hold those methods' hyper-parameters."""
    if method == "none":
        return None
    if method.split("+", 1)[0] == "waypoints":
        entries = objective if isinstance(objective, list) else [objective]
        closed = [{"lo": o["lo"], "hi": o["hi"]} for o in entries if o.get("type") == "avoid_box"]
        inner = method_spec(method.split("+", 1)[1], objective, tfg) if "+" in method else None
        return {"method": "waypoints", "closed": closed, **(waypoints or {}), **({"guidance": inner} if inner else {})}
    if method in PRESETS:
        return {"method": method, "objective": objective}
    tfg_spec = {"method": "tfg", **(tfg or {}), "objective": objective}
    if method == "tfg":
        return tfg_spec
    for prefix, inner in (("tfg+select", tfg_spec), ("select", None)):
        if method.startswith(prefix) and method[len(prefix):].isdigit():
            spec = {"method": "select", "n": int(method[len(prefix):]), "objective": objective}
            return {**spec, "guidance": inner} if inner else spec
    raise ValueError(f"Unknown method {method!r}: use none, {', '.join(PRESETS)}, tfg, select<N>, tfg+select<N>, "
                     f"waypoints or waypoints+<method>.")


def run_methods(planner_path: str, objective: Any, methods: list[str], tfg: dict[str, Any] | None, label: str,
                prefix: str, results: str, notes: str = "", overrides: dict[str, Any] | None = None,
                waypoints: dict[str, Any] | None = None, **evaluate_kwargs: Any) -> dict[str, EvaluationResult]:
    """Evaluate ``planner_path`` steered by each method toward ``objective``, on the same reset seeds.

    Prints one line per method and appends its row ``<prefix>-<label>-<method>`` to ``results``.
    ``evaluate_kwargs`` go to ``diffplan.evaluation.rollout.evaluate`` (episodes, seed, num_envs, protocol,
    violation); the row's notes carry ``notes``, the guidance spec, the violation region and the overrides.
    """
    meta = Planner.read_metadata(planner_path)
    overrides = overrides or {}
    out = {}
    for method in methods:
        spec = method_spec(method, objective, tfg, waypoints)
        planner = Planner.from_pretrained(planner_path, guidance=spec, **overrides)
        result = evaluate(planner, planner.task, progress=True, **evaluate_kwargs)
        s = result.summary()
        share = f" controller {s['controller_share']:.0f}%" if result.controller_returns is not None else ""
        violation = f" violation {s['violation']:.2f}" if result.violations is not None else ""
        print(f"{label} {method:14s}{violation} success {s['success']:.2f}{share} score {s['score_mean']:.1f} "
              f"plan {s['plan_ms_b1']:.0f} ms", flush=True)
        extra = {k: v for k, v in evaluate_kwargs.items() if k == "violation"}
        row_notes = " ".join(filter(None, [notes, f"guidance={json.dumps(spec)}" if spec else "",
                                           *(f"{k}={json.dumps(v)}" for k, v in extra.items()),
                                           f"set={json.dumps(overrides)}" if overrides else ""]))
        append_row(results, result_row(result, planner, f"{prefix}-{label}-{method}", planner_path,
                                       evaluate_kwargs.get("seed", 1000), meta, row_notes))
        out[method] = result
    return out
