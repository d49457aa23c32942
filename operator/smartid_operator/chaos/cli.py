"""``smartid-operator chaos run SCENARIO`` (ask the operator for outage tests and report) and
``smartid-operator chaos write`` (the writer Job's entry point; the operator starts it).

exit codes of ``run``: 0 every run Passed, 1 a run did not pass, 2 usage, 3 a run did not
finish in time (it was aborted: Mongo's replicas were restored).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
# Scenario names resolve here when no file of that name exists (default: the shipped ones).
SCENARIOS_ENV = "SMARTID_CHAOS_SCENARIOS"


def add_parser(sub: Any) -> None:
    chaos = sub.add_parser("chaos", help="chaos outage tests: run a scenario; the writer Job")
    chaos.set_defaults(handler=run)
    actions = chaos.add_subparsers(dest="chaos_action", required=True)
    run_verb = actions.add_parser(
        "run", help="run a scenario through the operator and report",
        description="Create the scenario's SmartIDOutageTest runs one after the other, print "
                    "their progress and the result table, and download each run's report.json "
                    "and timeline.png. exit codes: 0 all Passed, 1 not all Passed, 2 usage, "
                    "3 a run did not finish in time (aborted)")
    run_verb.add_argument("scenario", help="a scenario file, or a shipped one by name (short, "
                                      "medium, long, extended, cycles, demo)")
    run_verb.add_argument("-n", "--namespace", default="smartid")
    run_verb.add_argument("-d", "--database", default="smartid",
                     help="the SmartIDDatabase to test (default %(default)s)")
    run_verb.add_argument("--kubeconfig", help="default $KUBECONFIG or ~/.kube/config")
    run_verb.add_argument("--context", help="kube context (default: the current one)")
    run_verb.add_argument("-o", "--output", type=Path, default=Path("reports/chaos"),
                     help="where reports and pictures go, one folder per run "
                          "(default %(default)s)")
    run_verb.add_argument("--outage-seconds", type=int,
                     help="override the scenario's outage length (5-3600)")

    write = actions.add_parser("write", help="the writer Job: write a run's recordings and "
                                             "segments through the recovery writer library")
    write.add_argument("--storage", type=Path, required=True)
    write.add_argument("--run", required=True)
    write.add_argument("--recordings", type=int, required=True)
    write.add_argument("--segments-per-recording", type=int, required=True)
    write.add_argument("--uri", default=os.environ.get("SMARTID_MONGO_URI"))
    write.add_argument("--database", default=os.environ.get("SMARTID_DATABASE", "smartid"))


def run(args: argparse.Namespace) -> int:
    if args.chaos_action == "write":
        from smartid_operator.chaos.engine.writer import main

        return main(args.storage, args.uri, args.database, args.run, args.recordings,
                    args.segments_per_recording)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from smartid_operator.chaos.engine import runner
    from smartid_operator.chaos.engine.scenario import BOUNDS, ScenarioError, load
    from smartid_operator.errors import KubeError
    from smartid_operator.kube import Kube

    try:
        scenario = load(args.scenario, *(
            [Path(os.environ[SCENARIOS_ENV])] if os.environ.get(SCENARIOS_ENV) else []))
    except ScenarioError as exc:
        print(f"chaos run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.outage_seconds is not None:
        low, high = BOUNDS["outageSeconds"]
        if not low <= args.outage_seconds <= high:
            print(f"chaos run: --outage-seconds must be from {low} to {high}", file=sys.stderr)
            return EXIT_USAGE
        scenario = dataclasses.replace(scenario, outage_seconds=args.outage_seconds)
    kube = Kube.from_kubeconfig(args.kubeconfig, args.context)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        outcomes = runner.execute(kube, scenario, args.namespace, args.database, args.output,
                                  say)
    except TimeoutError as exc:
        print(f"chaos run: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except KubeError as exc:
        print(f"chaos run: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print()
    print(runner.table(outcomes))
    for outcome in outcomes:
        if outcome.report or outcome.picture:
            print(f"{outcome.name}: report {outcome.report}, picture {outcome.picture}")
    return EXIT_OK if all(o.passed for o in outcomes) else EXIT_FAILED
