"""The demo's Prometheus: started with the operator's alerting rules, its alerts printed as
they change during the outage test, and a picture of the main series over the outage made
from its query API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from smartid_operator.monitoring import render
from smartid_testbed.prometheus_server import PrometheusServer
from smartid_testbed.testbed import TestBed

# The demo's Mongo is down 15 s: the Mongo alert waits 5 s, so it goes pending, then firing.
THRESHOLDS = {"mongoUnreachableFor": "5s"}
INTERVAL = 1.0


def start(bed: TestBed, operator_namespace: str) -> PrometheusServer:
    """Prometheus for the rest of the demo's life (it stays up for a look until Ctrl-C)."""
    prom = PrometheusServer(bed.kubeconfig, bed.workdir / "prometheus",
                            render.rules_file(THRESHOLDS), render.pod_monitors(),
                            namespace=operator_namespace, interval=INTERVAL).start()
    bed.on_stop.append(prom.stop)
    return prom


class AlertPrinter:
    """Prints each change of the database's alerts (from Prometheus' /api/v1/alerts)."""

    def __init__(self, prom: PrometheusServer, namespace: str,
                 say: Callable[[str], None]) -> None:
        self.prom = prom
        self.namespace = namespace
        self.say = say
        self.seen: dict[str, str] = {}
        self.changes: list[tuple[float, str, str]] = []  # (time, alert, state)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="alert-printer")

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                alerts = self.prom.alerts(namespace=self.namespace)
            except OSError:
                continue
            now = {a["labels"]["alertname"]: a["state"] for a in alerts}
            for name in sorted(set(now) | set(self.seen)):
                state = now.get(name, "resolved")
                if self.seen.get(name, "resolved") != state:
                    self.changes.append((time.time(), name, state))
                    self.say(f"Prometheus: {name} is {state.upper()}"
                             f" ({time.strftime('%H:%M:%S')})")
            self.seen = now

    def __enter__(self) -> AlertPrinter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def picture(prom: PrometheusServer, namespace: str, start: float, end: float,
            path: Path) -> Path:
    """Mongo reachable, the Mongo alert's state, the recovery backlog and the reindex rate,
    as Prometheus recorded them between ``start`` and ``end``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = f'namespace="{namespace}", name="smartid"'
    panels = [
        ("Mongo reachable (operator's ping)", f"smartid_mongo_reachable{{{sel}}}", "C0"),
        ("SmartIDMongoUnreachable (1 pending, 2 firing)",
         f'(ALERTS{{alertname="SmartIDMongoUnreachable", alertstate="pending", {sel}}} or '
         f'ALERTS{{alertname="SmartIDMongoUnreachable", alertstate="firing", {sel}}} * 2)',
         "C3"),
        ("Recovery backlog (records not yet indexed)", f"smartid_recovery_pending{{{sel}}}",
         "C1"),
        ("Reindex rate (records/s, over 5 s)",
         f"sum(rate(smartid_recovery_indexed_total{{{sel}}}[5s]))", "C2"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 8), sharex=True)
    for ax, (title, expr, color) in zip(axes, panels, strict=True):
        for series in prom.query_range(expr, start, end, step=INTERVAL):
            xs = [float(t) - start for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            ax.step(xs, ys, where="post", color=color)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.1, 2.3)
    axes[1].set_yticks([0, 1, 2], ["inactive", "pending", "firing"])
    axes[0].set_ylim(-0.1, 1.1)
    axes[0].set_yticks([0, 1], ["no", "yes"])
    axes[-1].set_xlabel(f"seconds since {time.strftime('%H:%M:%S', time.localtime(start))}")
    fig.suptitle("The demo's outage test as Prometheus saw it", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
