"""The one interface through which the core (handlers, worker, reconcile, status) knows a
promise; runs in the operator process.

A promise is a package (``schema``, ``backup``, ``recovery``, ``chaos``) with the same doors:

* ``promise.py``  - a ``Promise``: what the core calls (this interface);
* ``observe.py``  - pure: what the operator observed, turned into its status section and
  conditions;
* ``children.py`` - pure builders of the Kubernetes objects it needs;
* ``engine/``     - the code that runs in its own pod, Job or CLI (its ``__init__`` says which);
* ``cli.py``      - its ``smartid-operator`` verbs (``add_parser``; each verb sets ``handler``).

The catalogue (``promises.py``) lists the installed ones; nothing in the core names one, so a
fifth promise is a new package and a name there.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from smartid_operator.spec import DatabaseSpec
from smartid_operator.status import Observation

if TYPE_CHECKING:
    from smartid_operator import mongo
    from smartid_operator.reconcile import Context

Key = tuple[str, str]  # the database's namespace and name
Body = Mapping[str, Any]
Child = tuple[str, str, dict[str, Any] | None]  # kind, name, manifest (None: delete it)


@dataclass(frozen=True)
class Watch:
    """A kind whose watch events a promise hears. ``managed``: only objects with the
    operator's ``managed-by`` label (the core widens the watch if any promise needs all)."""

    group: str
    version: str
    plural: str
    managed: bool = True


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the database, after the status that explains it is
    written; ``posted`` runs once it is (a promise marks it announced there)."""

    type: str
    reason: str
    message: str
    posted: Callable[[], None] | None = None


@dataclass(frozen=True)
class Look:
    """What one reconcile pass hands every promise."""

    key: Key
    uid: str  # the database object's: a name deleted and created again is a new one
    spec: DatabaseSpec
    previous: Mapping[str, Any]  # the whole status as this worker last wrote it
    memory: Any  # the promise's own, per database (``Promise.memory``)
    handle: mongo.Handle | None  # Mongo, when it answered ping in this pass
    resources: Observation  # ResourcesReady of this pass: were the children applied?
    now: datetime.datetime
    owner: str  # who holds locks and leases: "<operator>/<namespace>/<name>"
    in_blocking_pool: Callable[[Callable[[], Any]], Awaitable[Any]]  # for blocking engines


@dataclass
class View:
    """What a promise says of one database after one pass."""

    section: Mapping[str, Any] | None = None  # status.<Promise.section>; None: left out
    observations: list[Observation] = field(default_factory=list)
    required: tuple[str, ...] = ()  # of its conditions, those Ready waits for
    recheck_after: float | None = None  # settling: look again this soon
    unavailable: str | None = None  # a transient failure: retry soon
    events: list[Event] = field(default_factory=list)


class Operator(Protocol):
    """The doors of the running operator a promise's watch events and services use (the
    worker registry implements it)."""

    @property
    def context(self) -> Context: ...

    def databases(self) -> list[Key]: ...

    def database(self, key: Key) -> dict[str, Any] | None:
        """The database's latest body, None if it is not known (yet)."""

    def status(self, key: Key) -> Mapping[str, Any]:
        """Its status as its worker last wrote it."""

    def memory(self, promise: Promise, key: Key) -> Any:
        """The promise's memory of that database, made on first use: a watch event may
        come before its database's."""

    def poke(self, key: Key) -> None:
        """Wake the database's worker for a pass now."""

    def event(self, body: Body, type_: str, reason: str, message: str) -> None: ...


class Promise:
    """A promise's defaults: each package's ``promise.py`` overrides what it has."""

    name: str = ""  # its package, its metrics' and memories' key
    section: str = ""  # its key in the database's status
    conditions: tuple[str, ...] = ()  # the condition types it writes
    must_fix: frozenset[str] = frozenset()  # reasons a person must fix: phase Failed
    watches: tuple[Watch, ...] = ()  # the kinds whose events it hears (``heard``)
    owns: tuple[Watch, ...] = ()  # the kinds of its children: an edit is put right at once

    def memory(self) -> Any:
        """A new per-database memory, fed by watch events and passes."""
        return None

    def settings(self, spec: DatabaseSpec) -> dict[str, str]:
        """Its keys of the settings ConfigMap its pods read (only while enabled)."""
        return {}

    def children(self, name: str, namespace: str, spec: DatabaseSpec,
                 image: str) -> Sequence[Child]:
        return ()

    async def observe(self, look: Look) -> View | None:
        """One pass. None: the promise is off for this database (its conditions and its
        section go)."""
        return None

    def heard(self, operator: Operator, watch: Watch, event: str | None, body: Body) -> None:
        """A watch event of one of ``watches``."""

    def published(self, key: Key, status: Mapping[str, Any], memory: Any) -> None:
        """The status a pass wrote (or found unchanged): its metrics."""

    def forget(self, key: Key) -> None:
        """The database is gone: drop its metrics."""

    async def start(self, operator: Operator) -> None:
        """Operator start-up, after the workers' registry exists."""

    async def stop(self) -> None:
        """Operator shutdown, before the workers stop (they may still write a report)."""

