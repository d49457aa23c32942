"""The ordered list of migrations, one Python module each under ``versions/``."""

from __future__ import annotations

import importlib
import pkgutil

from smartid_operator.schema.engine import versions
from smartid_operator.schema.engine.model import Migration


def load() -> tuple[Migration, ...]:
    found = []
    for info in pkgutil.iter_modules(versions.__path__):
        module = importlib.import_module(f"{versions.__name__}.{info.name}")
        migration = getattr(module, "MIGRATION", None)
        if isinstance(migration, Migration):
            found.append(migration)
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise RuntimeError(f"migration versions must be 1..{len(found)} without gaps, got "
                           f"{[m.version for m in found]}")
    if len({m.id for m in found}) != len(found):
        raise RuntimeError("migration ids must be unique")
    return tuple(found)


MIGRATIONS = load()
