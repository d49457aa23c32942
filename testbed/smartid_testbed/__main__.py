"""``smartid-testbed``: build the binaries, or run the local cluster until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from smartid_testbed import binaries
from smartid_testbed.testbed import TestBed


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM end the test bed alike, at any point: the context managers stop and
    # clean up. Set explicitly: a shell starts background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    try:
        with TestBed.start(args.workdir) as bed:
            _serve(bed, args, started)
    except KeyboardInterrupt:
        print("\n[smartid-testbed] stopped and cleaned up", flush=True)
        return 130
    return 0


def _serve(bed: TestBed, args: argparse.Namespace, started: float) -> None:
    from smartid_testbed.demo import run_demo

    print(f"[smartid-testbed] cluster up in {time.monotonic() - started:.1f} s", flush=True)
    if args.demo:
        run_demo(bed)
    kubectl = binaries.find("kubectl")
    print(f"\n  export KUBECONFIG={bed.kubeconfig}\n  {kubectl} get nodes,pods -A\n"
          f"  mongo pod addresses: {bed.kubelet.addresses.path}\n"
          "\nCtrl-C stops the cluster and removes its files.", flush=True)
    if args.exit:
        return
    while True:
        time.sleep(1)
        bed.cluster.check_alive()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartid-testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or find) every test-bed binary and print the paths")
    up = sub.add_parser("up", help="start the local cluster and kubelet stand-in until Ctrl-C")
    up.add_argument("--workdir", type=Path, help="keep state here (default: a temp dir, removed)")
    up.add_argument("--demo", action="store_true", help="deploy the sample Mongo and show it")
    up.add_argument("--exit", action="store_true", help="stop right after start-up (smoke)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "build":
        for name, path in binaries.ensure_all().items():
            print(f"{name}\t{path}")
        return 0
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
