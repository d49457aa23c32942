"""``smartid-testbed``: build the binaries, or run the local cluster until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from smartid_testbed import binaries


def _up(args: argparse.Namespace) -> int:
    from smartid_testbed.demo import run_demo
    from smartid_testbed.testbed import TestBed

    started = time.monotonic()
    done = threading.Event()
    # SIGTERM ends the test bed as Ctrl-C does: everything stopped and cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with TestBed.start(args.workdir) as bed:
        print(f"[smartid-testbed] cluster up in {time.monotonic() - started:.1f} s", flush=True)
        if args.demo:
            run_demo(bed)
        kubectl = binaries.find("kubectl")
        print(f"\n  export KUBECONFIG={bed.kubeconfig}\n  {kubectl} get nodes,pods -A\n"
              f"  mongo pod addresses: {bed.kubelet.addresses.path}\n"
              "\nCtrl-C stops the cluster and removes its files.", flush=True)
        if args.exit:
            return 0
        try:
            while not done.wait(1):
                bed.cluster.check_alive()
        except KeyboardInterrupt:
            pass
        print("\n[smartid-testbed] stopping ...", flush=True)
    return 0


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
