"""Every verb of ``smartid-operator`` reaches its promise's ``run``: the verbs come from the
promises' ``cli.py`` (none is named in ``cli.py``), and no verb's own options may shadow the
dispatch (``chaos write --run`` once did)."""

from __future__ import annotations

import importlib

import pytest

from smartid_operator import cli, promises

VERBS = [
    (["migrate", "status"], "schema"),
    (["backup", "list", "--dir", "/nonexistent"], "backup"),
    (["reindex", "--storage", "/nonexistent"], "recovery"),
    (["recovery", "status"], "recovery"),
    (["chaos", "run", "short"], "chaos"),
    (["chaos", "write", "--storage", "/x", "--run", "r1", "--recordings", "1",
      "--segments-per-recording", "1"], "chaos"),
]


@pytest.mark.parametrize(("argv", "promise"), VERBS)
def test_each_verb_dispatches_to_its_promise(argv: list[str], promise: str) -> None:
    args = cli.parser().parse_args(argv)
    assert args.handler is importlib.import_module(f"smartid_operator.{promise}.cli").run


def test_every_installed_promise_has_the_same_doors() -> None:
    for name in promises.INSTALLED:
        for door in ("promise", "cli"):
            importlib.import_module(f"smartid_operator.{name}.{door}")
    assert [p.name for p in promises.load()] == list(promises.INSTALLED)
    sections = [p.section for p in promises.load()]
    assert len(set(sections)) == len(sections)
    conditions = [c for p in promises.load() for c in p.conditions]
    assert len(set(conditions)) == len(conditions)
