"""Kopf handlers of the outage-test runs (registered by one import at the end of the
operator's ``handlers.py``). Watch events only: no finalizer and no annotation on runs."""

from __future__ import annotations

from typing import Any

import kopf

from smartid_operator import GROUP, VERSION
from smartid_operator.chaos import PLURAL
from smartid_operator.chaos.manager import Manager


def _manager(memo: kopf.Memo) -> Manager:
    # Created after the worker registry (the core's start-up handler runs first).
    manager: Manager | None = getattr(memo, "chaos", None)
    if manager is None:
        manager = memo.chaos = Manager(memo.registry)
        manager.start()
    return manager


@kopf.on.startup()
async def start_chaos(memo: kopf.Memo, **_: Any) -> None:
    _manager(memo)


# Stopped by the core's cleanup (handlers.close), before the workers it reports to.


@kopf.on.event(GROUP, VERSION, PLURAL)
async def outage_test(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _manager(memo).observe(type, body)
