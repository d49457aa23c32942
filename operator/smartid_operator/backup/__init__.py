"""Backups: mongodump-layout dumps with manifests, verified restores, retention.

The seams the operator uses: ``summarize`` (status from manifests), ``parse_termination_message``
(a backup Job's outcome from its Pod) and the Job's command, ``smartid-operator backup run``.
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
