"""The installed promises, in the order a pass observes them: the schema first (the others
read and write collections its migrations make), the outage tests last (they only report).

The one module that names them. Each is the package ``smartid_operator.<name>`` with the
same doors (``promise.Promise``); the operator loads their ``promise.py``, the command line
only their ``cli.py`` (a Job's pod starts without the operator's code).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from smartid_operator.promise import Promise

INSTALLED = ("schema", "recovery", "backup", "chaos")


@functools.cache
def load() -> tuple[Promise, ...]:
    found = []
    for name in INSTALLED:
        promise = importlib.import_module(f"smartid_operator.{name}.promise").PROMISE
        assert isinstance(promise, Promise) and promise.name == name, name
        found.append(promise)
    return tuple(found)


def verbs() -> list[ModuleType]:
    """Each promise's ``cli`` module: ``add_parser(subparsers)``, each verb setting ``handler``."""
    return [importlib.import_module(f"smartid_operator.{name}.cli") for name in INSTALLED]
