"""The JSON form of guidance: ``{"method": ..., <hyper-parameters>, "objective": ...}`` <-> Guidance objects.

The CLI, configs and planner folders (``planner.json`` key ``"guidance"``) all say guidance this way. Methods
register themselves in ``METHODS`` (name -> import path of a ``from_spec(spec, planner) -> Guidance`` function);
only diffplan's own builders are looked up, so a spec never imports arbitrary code.
"""

from __future__ import annotations

import copy
import importlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffplan.guidance.base import Guidance

if TYPE_CHECKING:
    from diffplan.planner import Planner

METHODS: dict[str, str] = {
    **{name: "diffplan.guidance.tfg.from_spec" for name in ("tfg", "dps", "lgd", "freedom", "mpgd", "ugd")},
    "select": "diffplan.guidance.select.from_spec",
    "average": "diffplan.guidance.select.average_from_spec",
    "waypoints": "diffplan.guidance.waypoints.from_spec",
}


def guidance_from_spec(spec: Guidance | dict[str, Any], planner: Planner) -> Guidance:
    """A Guidance object as is, or the one a JSON spec describes for ``planner``."""
    if isinstance(spec, Guidance):
        return spec
    if not isinstance(spec, dict) or "method" not in spec:
        raise ValueError(f"A guidance spec is a Guidance object or a dict with a 'method' key, got {spec!r}.")
    method = spec["method"]
    if method not in METHODS:
        known = ", ".join(sorted(METHODS)) or "none yet"
        raise ValueError(f"Unknown guidance method {method!r}; known methods: {known}.")
    module_name, _, name = METHODS[method].rpartition(".")
    guidance = getattr(importlib.import_module(module_name), name)(spec, planner)
    guidance.spec = dict(spec)  # what save_pretrained writes to planner.json
    return guidance


def objective_specs(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every objective entry a guidance spec names, its own and those of the guidance nested in it (``select``
    over ``tfg``), lists flattened; [] for None or a spec without objectives."""
    if not isinstance(spec, dict):
        return []
    objective = spec.get("objective")
    entries = objective if isinstance(objective, list) else [objective] if isinstance(objective, dict) else []
    return [*entries, *objective_specs(spec.get("guidance"))]


def read_in_folder(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A planner folder's own guidance spec with each relative critic ``"path"`` that the folder holds read inside
    it (``"path": "critic"`` is ``<folder>/critic``), so a steered planner ships with its critic as one folder."""
    spec = copy.deepcopy(spec)
    for entry in objective_specs(spec):
        path = entry.get("path") if entry.get("type") == "critic" else None
        if isinstance(path, str) and not Path(path).is_absolute() and (folder / path).is_dir():
            entry["path"] = str(folder / path)
    return spec


def carry_critics(spec: dict[str, Any], folder: Path, taken: set[str]) -> dict[str, Any]:
    """Copy each critic folder that ``spec`` reads into ``folder`` (as ``critic``, ``critic-1``, ...; names in
    ``taken`` are skipped) and return the spec reading them there, relative to the folder (``read_in_folder``)."""
    from diffplan.io import CONFIG

    spec, copied = copy.deepcopy(spec), {}
    for entry in objective_specs(spec):
        path = entry.get("path") if entry.get("type") == "critic" else None
        if not isinstance(path, str) or not Path(path).is_dir():
            continue  # loading the spec reports it
        source = Path(path) if (Path(path) / CONFIG).exists() else Path(path) / "critic"
        key = source.resolve()
        if key not in copied:
            names = (name for name in ("critic", *(f"critic-{i}" for i in range(1, 100))) if name not in taken)
            copied[key] = next(names)
            taken.add(copied[key])
            shutil.copytree(source, folder / copied[key])
        entry["path"] = copied[key]
    return spec
