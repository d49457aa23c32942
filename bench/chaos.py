"""Benchmark: outage tests of the short, medium and long scenarios through the
operator on the local control plane: the samples as `make demo` applies them, each scenario
run by the same runner as `smartid-operator chaos run`. Prints JSON: per scenario, recovery
seconds (Mongo answering again to every written id indexed, as the operator measured it), the
run's own duration and the end-to-end time the runner waited (create to Passed).

The declared outages (30 s, 2 min, 10 min) are shortened to --outage-seconds (default 10) so
the three fit in a few minutes: recovery depends on what was written, not on how long Mongo
stayed down (the agent probes every 0.25 s either way). --full runs them as declared.

    python bench/chaos.py [--outage-seconds 10 | --full] [--scenarios short medium long]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smartid_operator.chaos.engine import runner
from smartid_operator.chaos.engine.scenario import load
from smartid_operator.kube import Kube
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply_samples, install_operator
from smartid_testbed.testbed import TestBed

NS = "smartid"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage-seconds", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="the declared outage lengths")
    parser.add_argument("--scenarios", nargs="+", default=["short", "medium", "long"])
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with TestBed.start() as bed:
        install_operator(bed, "deploy", health_interval=3)
        apply_samples(bed, NS)
        kube = Kube.from_kubeconfig(str(bed.kubeconfig))
        wait_for(lambda: ((kube.custom_object("smartiddatabases", NS, "smartid") or {})
                          .get("status") or {}).get("phase") == "Ready",
                 timeout=120, what="the sample database Ready")
        out = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
        for name in args.scenarios:
            declared = load(name)
            scenario = declared if args.full else dataclasses.replace(
                declared, outage_seconds=min(declared.outage_seconds, args.outage_seconds),
                cycles=1)
            started = time.monotonic()
            outcome = runner.execute(kube, scenario, NS, "smartid", out,
                                     lambda line: print(line, file=sys.stderr, flush=True))[0]
            waited = time.monotonic() - started
            status, timings = outcome.status, outcome.status.get("timings") or {}
            written = int(status.get("written") or 0)
            recovery = status.get("recoverySeconds")
            results.append({
                "scenario": name, "result": status.get("phase"),
                "declaredOutageSeconds": declared.outage_seconds,
                "outageSecondsRequested": scenario.outage_seconds,
                "outageSecondsMeasured": timings.get("outageSeconds"),
                "recordings": scenario.recordings,
                "segments": scenario.recordings * scenario.segments_per_recording,
                "written": written, "reindexed": status.get("reindexed"),
                "lost": status.get("lost"), "duplicated": status.get("duplicated"),
                "recoverySeconds": recovery,
                "reindexedPerSecond": round(written / recovery) if recovery else None,
                "runSeconds": timings.get("runSeconds"),
                "endToEndSeconds": round(waited, 2),
            })
    print(json.dumps({
        "benchmark": "chaos outage tests (scale to 0, write, scale back, prove reindexed)",
        "where": "local control plane + kubelet stand-in; Mongo is FerretDB v1.24.2 (SQLite)",
        "cores": os.cpu_count(),
        "measured_by": "the operator's own probes (every 0.1 s): recoverySeconds is an upper "
                       "bound within one poll and one count query",
        "results": results}, indent=2))
    return 0 if all(r["result"] == "Passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
