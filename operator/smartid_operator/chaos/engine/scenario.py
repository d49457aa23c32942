"""Scenario files (``chaos/scenarios/*.yaml`` or any path): what a runner asks the operator
to test, cycle by cycle.

    name: short
    description: a short outage with a few writes
    outageSeconds: 10
    recordings: 3
    segmentsPerRecording: 10
    cycles: 1                      # runs one after the other
    recoveryTimeoutSeconds: 120    # optional

The bounds are the run CRD's, so a scenario that parses here is never refused by the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BOUNDS = {"outageSeconds": (5, 3600), "recordings": (1, 100000),
          "segmentsPerRecording": (0, 1000), "cycles": (1, 100),
          "recoveryTimeoutSeconds": (5, 7200)}
KNOWN = {"name", "description", *BOUNDS}


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    outage_seconds: int
    recordings: int
    segments_per_recording: int
    cycles: int = 1
    recovery_timeout_seconds: int | None = None
    description: str = ""

    def run_spec(self, database: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"database": database, "outageSeconds": self.outage_seconds,
                                "recordings": self.recordings,
                                "segmentsPerRecording": self.segments_per_recording}
        if self.recovery_timeout_seconds is not None:
            spec["recoveryTimeoutSeconds"] = self.recovery_timeout_seconds
        return spec


def parse(doc: Any, origin: str = "scenario") -> Scenario:
    if not isinstance(doc, Mapping):
        raise ScenarioError(f"{origin}: must be a mapping of settings")
    unknown = sorted(set(doc) - KNOWN)
    if unknown:
        raise ScenarioError(f"{origin}: unknown field(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(KNOWN))}")
    values: dict[str, int | None] = {}
    for key, (low, high) in BOUNDS.items():
        value = doc.get(key)
        if value is None:
            values[key] = None
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ScenarioError(f"{origin}: {key} must be an integer from {low} to {high}, "
                                f"got {value!r}")
        values[key] = value
    for key in ("outageSeconds", "recordings", "segmentsPerRecording"):
        if values[key] is None:
            raise ScenarioError(f"{origin}: {key} is required")
    name = doc.get("name")
    if not isinstance(name, str) or not name.replace("-", "").isalnum() or not name.islower():
        raise ScenarioError(f"{origin}: name must be lowercase letters, digits and '-', "
                            f"got {name!r}")
    return Scenario(name=name, outage_seconds=int(values["outageSeconds"] or 0),
                    recordings=int(values["recordings"] or 0),
                    segments_per_recording=int(values["segmentsPerRecording"] or 0),
                    cycles=int(values["cycles"] or 1),
                    recovery_timeout_seconds=values["recoveryTimeoutSeconds"],
                    description=str(doc.get("description") or ""))


# The shipped scenarios, package data: ``chaos run short`` works from any directory.
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def load(ref: str, search: Path | None = SCENARIOS) -> Scenario:
    """A scenario by path, or by name from ``search`` (the shipped ``chaos/scenarios/``)."""
    path = Path(ref)
    if not path.exists() and search is not None and "/" not in ref:
        path = search / (ref if ref.endswith((".yaml", ".yml")) else f"{ref}.yaml")
    if not path.is_file():
        where = f" or {search}/{ref}.yaml" if search is not None else ""
        raise ScenarioError(f"no scenario file {ref}{where}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not YAML: {exc}") from None
    return parse(doc, str(path))
