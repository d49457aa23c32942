"""Declarative migration steps: each can say what it would do (read-only), do it idempotently,
and give a canonical definition that the migration's checksum covers.

Indexes are compared by key pattern and options, never by name alone: servers name things
differently, and MongoDB refuses the same keys under a second name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from smartid_operator import mongo
from smartid_operator.mongo import Database

Keys = tuple[tuple[str, int | str], ...]


class StepConflict(RuntimeError):
    """The database holds something the step cannot reconcile without losing data or intent."""


@dataclass(frozen=True)
class StepPlan:
    step: str
    action: str  # create | set | drop | noop | conflict
    detail: str = ""


@dataclass(frozen=True)
class StepResult:
    step: str
    outcome: str  # created | set | dropped | exists | unsupported
    detail: str = ""

    def as_doc(self) -> dict[str, str]:
        return {"step": self.step, "outcome": self.outcome, "detail": self.detail}


class Step(Protocol):
    def describe(self) -> str: ...
    def definition(self) -> dict[str, Any]: ...
    def plan(self, db: Database) -> StepPlan: ...
    def apply(self, db: Database) -> StepResult: ...


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class CreateCollection:
    name: str

    def describe(self) -> str:
        return f"create collection {self.name}"

    def definition(self) -> dict[str, Any]:
        return {"op": "createCollection", "name": self.name}

    def plan(self, db: Database) -> StepPlan:
        if self.name in mongo.list_collections(db):
            return StepPlan(self.describe(), "noop", "exists")
        return StepPlan(self.describe(), "create")

    def apply(self, db: Database) -> StepResult:
        if self.name in mongo.list_collections(db):
            return StepResult(self.describe(), "exists")
        mongo.create_collection(db, self.name)
        return StepResult(self.describe(), "created")


def _number(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return int(value)


def normalize_keys(key: Mapping[str, Any] | Keys,
                   weights: Mapping[str, Any] | None = None) -> Keys:
    """One shape for a key pattern, whether written by us or reported by a server.

    A text index is reported by MongoDB as ``{_fts: "text", _ftsx: 1}`` with its fields in
    ``weights``; both it and ``{"text": "text"}`` become ``(("$text", "text"),)``.
    """
    pairs = list(key.items()) if isinstance(key, Mapping) else list(key)
    text_fields = sorted(f for f, v in pairs if v == "text")
    if any(f == "_fts" for f, _ in pairs):
        text_fields = sorted((weights or {}).keys())
    plain = [(f, _number(v)) for f, v in pairs if v != "text" and f not in ("_fts", "_ftsx")]
    if text_fields:
        plain.append(("$text", ",".join(text_fields)))
    return tuple(plain)


def normalize_options(info: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if info.get("unique"):
        options["unique"] = True
    if info.get("sparse"):
        options["sparse"] = True
    if info.get("expireAfterSeconds") is not None:
        options["expireAfterSeconds"] = int(info["expireAfterSeconds"])
    return options


@dataclass(frozen=True)
class CreateIndex:
    collection: str
    keys: Keys
    name: str
    unique: bool = False
    expire_after_seconds: int | None = None
    sparse: bool = False

    def options(self) -> dict[str, Any]:
        return normalize_options({"unique": self.unique, "sparse": self.sparse,
                                  "expireAfterSeconds": self.expire_after_seconds})

    def describe(self) -> str:
        spec = ", ".join(f"{f}: {d}" for f, d in self.keys)
        opts = "".join(f", {k}: {v}" for k, v in self.options().items())
        return f"index {self.name} on {self.collection} {{{spec}}}{opts}"

    def definition(self) -> dict[str, Any]:
        return {"op": "createIndex", "collection": self.collection, "name": self.name,
                "keys": [list(k) for k in self.keys], "options": self.options()}

    def match(self, existing: list[dict[str, Any]]) -> str | None:
        """The name under which an equivalent index exists, or None; conflicts raise."""
        want_keys, want_opts = normalize_keys(self.keys), self.options()
        for info in existing:
            keys = normalize_keys(info["key"], info.get("weights"))
            opts = normalize_options(info)
            if keys == want_keys:
                if opts != want_opts:
                    raise StepConflict(
                        f"{self.describe()}: the server has these keys as index "
                        f"{info['name']!r} with options {opts or '{}'}; drop or migrate it first")
                return str(info["name"])
            if info.get("name") == self.name:
                raise StepConflict(
                    f"{self.describe()}: an index named {self.name!r} exists on other keys "
                    f"{dict(info['key'])}; rename one of them")
        return None

    def plan(self, db: Database) -> StepPlan:
        try:
            name = self.match(mongo.list_indexes(db, self.collection))
        except StepConflict as exc:
            return StepPlan(self.describe(), "conflict", str(exc))
        if name is not None:
            return StepPlan(self.describe(), "noop", f"exists as {name}")
        return StepPlan(self.describe(), "create")

    def apply(self, db: Database) -> StepResult:
        name = self.match(mongo.list_indexes(db, self.collection))
        if name is not None:
            return StepResult(self.describe(), "exists", f"as {name}")
        try:
            mongo.create_index(db, self.collection, list(self.keys), self.name, self.options())
        except mongo.Unsupported as exc:
            return StepResult(self.describe(), "unsupported", str(exc))
        return StepResult(self.describe(), "created")


@dataclass(frozen=True)
class DropIndex:
    collection: str
    name: str

    def describe(self) -> str:
        return f"drop index {self.name} on {self.collection}"

    def definition(self) -> dict[str, Any]:
        return {"op": "dropIndex", "collection": self.collection, "name": self.name}

    def plan(self, db: Database) -> StepPlan:
        names = {i["name"] for i in mongo.list_indexes(db, self.collection)}
        return StepPlan(self.describe(), "drop" if self.name in names else "noop")

    def apply(self, db: Database) -> StepResult:
        names = {i["name"] for i in mongo.list_indexes(db, self.collection)}
        if self.name not in names:
            return StepResult(self.describe(), "exists", "already gone")
        mongo.drop_index(db, self.collection, self.name)
        return StepResult(self.describe(), "dropped")


@dataclass(frozen=True)
class SetValidator:
    """A ``$jsonSchema`` validator. ``moderate`` + ``error`` by default: new documents and
    updates of valid ones must comply; documents that predate the rule stay updatable (they are
    counted and reported before the validator goes on, never silently rejected later)."""

    collection: str
    validator: Mapping[str, Any] = field(hash=False)
    level: str = "moderate"
    action: str = "error"

    def describe(self) -> str:
        return (f"validator on {self.collection} (validationLevel {self.level}, "
                f"validationAction {self.action})")

    def definition(self) -> dict[str, Any]:
        return {"op": "setValidator", "collection": self.collection,
                "validator": json.loads(canonical(self.validator)), "level": self.level,
                "action": self.action}

    def _current(self, db: Database) -> dict[str, Any] | None:
        return mongo.list_collections(db).get(self.collection)

    def _in_place(self, options: Mapping[str, Any] | None) -> bool:
        return options is not None and canonical(options.get("validator")) == canonical(
            self.validator) and options.get("validationLevel", "strict") == self.level and \
            options.get("validationAction", "error") == self.action

    def _failing(self, db: Database, current: Mapping[str, Any] | None) -> str:
        if current is None:
            return "0 existing documents would fail it"
        count = mongo.count_failing(db, self.collection, dict(self.validator))
        if count is None:
            return "the server cannot count documents failing it"
        return f"{count} existing documents would fail it"

    def plan(self, db: Database) -> StepPlan:
        current = self._current(db)
        if self._in_place(current):
            return StepPlan(self.describe(), "noop", "in place")
        return StepPlan(self.describe(), "set", self._failing(db, current))

    def apply(self, db: Database) -> StepResult:
        current = self._current(db)
        if self._in_place(current):
            return StepResult(self.describe(), "exists", "in place")
        failing = self._failing(db, current)
        if current is None:
            mongo.create_collection(db, self.collection)
        try:
            mongo.set_validator(db, self.collection, dict(self.validator), self.level,
                                self.action)
        except mongo.Unsupported as exc:
            return StepResult(self.describe(), "unsupported", f"{exc}; {failing}")
        return StepResult(self.describe(), "set", failing)


@dataclass(frozen=True)
class RemoveValidator:
    collection: str

    def describe(self) -> str:
        return f"remove the validator of {self.collection}"

    def definition(self) -> dict[str, Any]:
        return {"op": "removeValidator", "collection": self.collection}

    def plan(self, db: Database) -> StepPlan:
        current = mongo.list_collections(db).get(self.collection) or {}
        return StepPlan(self.describe(), "drop" if current.get("validator") else "noop")

    def apply(self, db: Database) -> StepResult:
        current = mongo.list_collections(db).get(self.collection)
        if not current or not current.get("validator"):
            return StepResult(self.describe(), "exists", "no validator")
        try:
            mongo.set_validator(db, self.collection, {}, "off", "error")
        except mongo.Unsupported as exc:
            return StepResult(self.describe(), "unsupported", str(exc))
        return StepResult(self.describe(), "dropped")
