"""The rows of issue 13's tables: a method name -> the guidance spec it stands for, for one objective.

Names: ``none`` (unguided), ``dps lgd freedom mpgd ugd`` (the presets at their defaults), ``tfg`` (TFG with the
hyper-parameters given, e.g. the setting ``search.py`` found on validation seeds), ``select<N>`` (best of N plain
plans by the objective) and ``tfg+select<N>`` (best of N TFG-guided plans).
"""

from __future__ import annotations

from typing import Any

PRESETS = ("dps", "lgd", "freedom", "mpgd", "ugd")
ALL_METHODS = ("none", *PRESETS, "tfg", "select8", "select32", "tfg+select32")


def method_spec(method: str, objective: Any, tfg: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The guidance spec of ``method`` for ``objective`` (an objective spec); None for ``none``."""
    if method == "none":
        return None
    if method in PRESETS:
        return {"method": method, "objective": objective}
    tfg_spec = {"method": "tfg", **(tfg or {}), "objective": objective}
    if method == "tfg":
        return tfg_spec
    for prefix, inner in (("tfg+select", tfg_spec), ("select", None)):
        if method.startswith(prefix) and method[len(prefix):].isdigit():
            spec = {"method": "select", "n": int(method[len(prefix):]), "objective": objective}
            return {**spec, "guidance": inner} if inner else spec
    raise ValueError(f"Unknown method {method!r}: use none, {', '.join(PRESETS)}, tfg, select<N> or tfg+select<N>.")
