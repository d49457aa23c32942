"""``smartid-operator``: ``run`` the operator; each promise adds its verbs (its ``cli.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from smartid_operator import __version__, promises
from smartid_operator.options import OPTIONS


def _run(args: argparse.Namespace) -> int:
    import kopf

    OPTIONS.namespaces = tuple(args.namespace or ())
    OPTIONS.clusterwide = args.all_namespaces
    OPTIONS.health_interval = args.health_interval
    OPTIONS.metrics_port = args.metrics_port
    OPTIONS.image = args.agent_image
    if not OPTIONS.image and not (os.environ.get("POD_NAME") and os.environ.get("POD_NAMESPACE")):
        # In a pod, the agents and Jobs run the pod's own image; elsewhere nothing says which.
        print("run: --agent-image (or $SMARTID_OPERATOR_IMAGE) is required outside a pod: the "
              "image the agents and the Jobs run", file=sys.stderr)
        return 2
    from smartid_operator import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    # A line per watch event (every pod, every status write) would drown everything else;
    # the workers log what matters.
    logging.getLogger("kopf.objects").addFilter(
        lambda record: not record.getMessage().endswith("' succeeded."))
    kopf.run(
        standalone=True,  # one replica, Recreate: docs/design.md "High availability"
        clusterwide=OPTIONS.clusterwide,
        namespaces=OPTIONS.namespaces,
        liveness_endpoint=args.liveness or None,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    """``run`` and every promise's verbs; each verb's parser sets ``handler``."""
    parser = argparse.ArgumentParser(prog="smartid-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator (Kopf)")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append",
                       help="watch this namespace (repeatable; globs like 'smartid-*' allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch every namespace (needs the cluster-wide RBAC overlay)")
    run.add_argument("--health-interval", type=float, default=OPTIONS.health_interval,
                     help="seconds between health checks of each database (default %(default)s)")
    run.add_argument("--metrics-port", type=int, default=8080,
                     help="Prometheus metrics port, 0 to disable (default %(default)s)")
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz",
                     help="liveness endpoint URL, '' to disable (default %(default)s)")
    run.add_argument("--agent-image", default=OPTIONS.image,
                     help="image of the agents and Jobs the operator runs (default "
                          "$SMARTID_OPERATOR_IMAGE, else the operator's own pod's image)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(handler=_run)
    for verbs in promises.verbs():
        verbs.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
