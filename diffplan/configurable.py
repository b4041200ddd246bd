"""Modules that remember their constructor arguments, so a folder can rebuild them without pickles."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable
from typing import Any

# a dotted path of identifiers inside the diffplan package: checked as a string, before anything is imported
_DIFFPLAN_PATH = re.compile(r"diffplan(\.[A-Za-z_][A-Za-z0-9_]*)+")


class UntrustedClassError(ValueError):
    """A saved folder names a class outside diffplan that the caller did not allow."""


class Configurable:
    """Mixin: call ``self.save_config(locals())`` first thing in ``__init__``; ``self.config`` is JSON-able."""

    config: dict[str, Any]

    def save_config(self, local_vars: dict[str, Any]) -> None:
        config = {}
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or name not in local_vars:
                continue
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                config.update(local_vars[name])
            else:
                config[name] = local_vars[name]
        self.config = {k: _jsonable(v) for k, v in config.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def class_path(obj_or_cls: Any) -> str:
    cls = obj_or_cls if inspect.isclass(obj_or_cls) else type(obj_or_cls)
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_class(path: str, base: type | None = None) -> type:
    """Import ``package.module.Class``; ``base`` restricts what may be built (no arbitrary callables)."""
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"Cannot import class {path!r}: {err}") from err
    if not inspect.isclass(cls):
        raise ValueError(f"{path!r} is not a class.")
    if base is not None and not issubclass(cls, base):
        raise ValueError(f"{path!r} is not a subclass of {base.__name__}.")
    return cls


def resolve_saved_class(path: Any, base: type, allowed_classes: Iterable[str | type] = (), source: str = "") -> type:
    """Resolve a class named by a saved file (planner.json, config.json) without trusting the file.

    Only classes defined inside the ``diffplan`` package are built, unless the caller lists the class in
    ``allowed_classes`` (exact import paths ``"pkg.module.Class"`` or the class objects themselves). The name is
    checked as a string before anything is imported, so a hostile name has no import side effects.

    Args:
        path: the ``_class_name`` read from the file.
        base: the class must subclass this.
        allowed_classes: classes outside diffplan that the caller trusts.
        source: the file the name came from, for the error message.
    """
    where = f"{source} names" if source else "Saved folder names"
    if not isinstance(path, str):
        raise UntrustedClassError(f"{where} class {path!r}, which is not an import path string; the file is corrupt.")
    trusted = {c if isinstance(c, str) else class_path(c): c for c in allowed_classes}
    if path in trusted and not isinstance(trusted[path], str):
        cls = trusted[path]
    elif path in trusted or _DIFFPLAN_PATH.fullmatch(path):
        try:
            cls = resolve_class(path)
        except ValueError as err:
            raise ValueError(f"{where} a class that cannot be built: {err}") from err
    else:
        raise UntrustedClassError(f"{where} class {path!r}, which is outside diffplan and was not imported; if you "
                                  f"trust this folder, pass allowed_classes=[{path!r}].")
    if path not in trusted and not cls.__module__.startswith("diffplan."):
        raise UntrustedClassError(f"{where} class {path!r}, which is defined in {cls.__module__}, not in diffplan; "
                                  f"if you trust this folder, pass allowed_classes=[{path!r}].")
    if not issubclass(cls, base):
        raise UntrustedClassError(f"{where} class {path!r}, which is not a subclass of {base.__name__}.")
    return cls
