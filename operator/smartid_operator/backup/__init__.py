"""The backup promise: CronJob dumps in ``mongodump``'s layout, each verified by a restore,
pruned by retention, on a volume or in an S3 bucket; SmartIDRestore runs one back. Where each
module runs:

* ``promise.py``  - operator: its door for the core (``promise.Promise``);
* ``observe.py``  - operator, pure: ``status.backup``, ``BackupScheduled``, ``BackupHealthy``
  from ``jobs.py``, the memory of the Jobs fed by watch events;
* ``restores.py`` - operator: the SmartIDRestore controller (one Job per restore);
* ``children.py`` - pure: the CronJob and the restore Job;
* ``metrics.py``  - operator: its Prometheus series;
* ``engine/``     - the backup and restore Jobs' pods, and the same commands on a laptop;
* ``cli.py``      - ``smartid-operator backup run | list | prune | verify | restore``.

Re-exported: what status and tools need from the engine (``summarize``, ``scan``, ...).
"""

from smartid_operator.backup.engine.manifest import Manifest, scan
from smartid_operator.backup.engine.retention import Policy, plan
from smartid_operator.backup.engine.summary import (
    BackupSummary,
    DumpSummary,
    parse_termination_message,
    summarize,
    termination_message,
)

__all__ = ["BackupSummary", "DumpSummary", "Manifest", "Policy", "parse_termination_message",
           "plan", "scan", "summarize", "termination_message"]
