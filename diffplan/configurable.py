"""Modules that remember their constructor arguments, so a folder can rebuild them without pickles."""

from __future__ import annotations

import importlib
import inspect
from typing import Any


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
    if not inspect.isclass(cls) or (base is not None and not issubclass(cls, base)):
        raise ValueError(f"{path!r} is not a subclass of {base.__name__ if base else 'object'}.")
    return cls
