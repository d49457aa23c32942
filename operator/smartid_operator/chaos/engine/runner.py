"""``smartid-operator chaos run SCENARIO``: create the scenario's runs one after the other,
follow each (one line per change of step), print the result table and download every run's
report and picture. The operator does the test; this only asks and watches, through the
same Kubernetes seam, so it works alike on the test bed, on kind and on any cluster.
"""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartid_operator import GROUP, VERSION, clock
from smartid_operator.chaos import KIND, PLURAL
from smartid_operator.chaos.children import REPORT_JSON, TIMELINE_PNG, report_name
from smartid_operator.chaos.engine.model import TERMINAL
from smartid_operator.chaos.engine.scenario import Scenario
from smartid_operator.errors import KubeError
from smartid_operator.kube import Kube

Say = Callable[[str], None]


@dataclass
class Outcome:
    name: str
    status: dict[str, Any]
    report: Path | None = None
    picture: Path | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status.get("phase") == "Passed"


def run_name(database: str, scenario: str, cycle: int, now: datetime.datetime) -> str:
    """A new run's name: ``<database>-<scenario>-<MMDDhhmmss>-c<cycle>`` (at most 50
    characters, a DNS label: it becomes part of the recording ids)."""
    stem = f"{database[:18].replace('.', '-').strip('-')}-{scenario[:12].strip('-')}"
    return f"{stem}-{now:%m%d%H%M%S}-c{cycle}"


def run_body(scenario: Scenario, namespace: str, database: str, name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"smartid.io/scenario": scenario.name}},
            "spec": scenario.run_spec(database)}


def progress_line(elapsed: float, status: dict[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    step = status.get("step") or "-"
    return f"[{elapsed:6.1f} s] {phase:<8} {step:<19} {status.get('message') or ''}"


def wait(kube: Kube, namespace: str, name: str, say: Say, *, timeout: float,
         poll: float = 1.0) -> dict[str, Any]:
    """Until the run is finished; a line each time its phase, step or message changes."""
    started = time.monotonic()
    last = None
    status: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        obj = kube.custom_object(PLURAL, namespace, name)
        if obj is None:
            raise KubeError(404, "NotFound", f"run {namespace}/{name} was deleted")
        status = obj.get("status") or {}
        shown = (status.get("phase"), status.get("step"), status.get("message"))
        if shown != last:
            say(progress_line(time.monotonic() - started, status))
            last = shown
        if status.get("phase") in TERMINAL:
            return status
        time.sleep(poll)
    raise TimeoutError(f"run {namespace}/{name} not finished after {timeout:.0f} s "
                       f"(step {status.get('step')})")


def download(kube: Kube, namespace: str, name: str, out: Path) -> tuple[Path | None,
                                                                       Path | None]:
    """report.json and timeline.png from the run's ConfigMap into ``out/<run>/``."""
    cm = kube.config_map(namespace, report_name(name))
    if cm is None:
        return None, None
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    report = picture = None
    if REPORT_JSON in (cm.get("data") or {}):
        report = folder / REPORT_JSON
        report.write_text(cm["data"][REPORT_JSON])
    if TIMELINE_PNG in (cm.get("binaryData") or {}):
        picture = folder / TIMELINE_PNG
        picture.write_bytes(base64.b64decode(cm["binaryData"][TIMELINE_PNG]))
    return report, picture


def abort(kube: Kube, namespace: str, name: str) -> None:
    """Ask the operator to end the run now (it restores Mongo's replicas first)."""
    kube.patch_custom(PLURAL, namespace, name, {"spec": {"abort": True}})


def execute(kube: Kube, scenario: Scenario, namespace: str, database: str, out: Path,
            say: Say, *, poll: float = 1.0) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for cycle in range(1, scenario.cycles + 1):
        name = run_name(database, scenario.name, cycle, clock.utcnow())
        say(f"run {cycle}/{scenario.cycles}: {namespace}/{name} ({scenario.outage_seconds} s "
            f"outage, {scenario.recordings} recordings x {scenario.segments_per_recording} "
            f"segments)")
        kube.create_custom(PLURAL, namespace, run_body(scenario, namespace, database, name))
        started = time.monotonic()
        try:
            status = wait(kube, namespace, name, say, timeout=_bound(scenario), poll=poll)
        except (KeyboardInterrupt, TimeoutError):
            say(f"aborting {name}: the operator restores Mongo's replicas")
            abort(kube, namespace, name)
            raise
        report, picture = download(kube, namespace, name, out)
        outcomes.append(Outcome(name, status, report, picture, time.monotonic() - started))
    return outcomes


def _bound(scenario: Scenario) -> float:
    """What the runner waits for one run: the operator's own bound plus a margin."""
    from smartid_operator.chaos.engine.model import Settings
    from smartid_operator.spec import OutageTestSpec

    settings = Settings(scenario.outage_seconds, scenario.recordings,
                        scenario.segments_per_recording,
                        scenario.recovery_timeout_seconds
                        or OutageTestSpec.recovery_timeout_seconds)
    return settings.deadline_seconds + 120.0


COLUMNS = ("RUN", "RESULT", "WRITTEN", "REINDEXED", "LOST", "DUPLICATED", "OUTAGE s",
           "RECOVERY s", "RUN s")


def table(outcomes: list[Outcome]) -> str:
    rows: list[tuple[str, ...]] = [COLUMNS]
    for o in outcomes:
        s, t = o.status, o.status.get("timings") or {}
        rows.append((o.name, str(s.get("phase")), *(_num(s.get(k)) for k in (
            "written", "reindexed", "lost", "duplicated")), _num(t.get("outageSeconds")),
            _num(s.get("recoverySeconds")), _num(t.get("runSeconds"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]
    for o in outcomes:
        if not o.passed:
            lines.append(f"{o.name}: {o.status.get('reason')}: {o.status.get('message')}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
