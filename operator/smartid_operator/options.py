"""Run-time options of the operator process, set once by the CLI before handlers load."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass
class Options:
    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    # How often the level-based health check runs per database (seconds).
    health_interval: float = float(os.environ.get("SMARTID_HEALTH_INTERVAL", "15"))
    metrics_port: int = 8080
    # The image the operator runs its agents with; empty: its own pod's image.
    image: str = os.environ.get("SMARTID_OPERATOR_IMAGE", "")
    identity: str = socket.gethostname()


OPTIONS = Options()
