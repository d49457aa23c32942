"""The README's main job on the embedded default (grows with the operator)."""

from __future__ import annotations

from smartid_testbed.testbed import TestBed


def run_demo(bed: TestBed) -> None:
    print("[demo] test bed is up; nothing else to show yet", flush=True)
