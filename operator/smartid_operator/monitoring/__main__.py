"""``python -m smartid_operator.monitoring write|check [--root DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smartid_operator.monitoring import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartid_operator.monitoring")
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the repository's root (default: the current directory)")
    args = parser.parse_args(argv)
    if args.action == "write":
        for path in render.write(args.root):
            print(f"wrote {path}")
        return 0
    stale = render.stale(args.root)
    for path in stale:
        print(f"stale: {path} (run: python -m smartid_operator.monitoring write)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
