"""The alerting rules, the one source: every rendering (the plain rules file, the kustomize
component's PrometheusRule, the Helm template) is made from these by ``render.py``.

Thresholds are parameters, never literals in an expression: a duration is an alert's ``for``;
a number is a recording rule ``smartid:alert_threshold:<name>`` whose whole expression is the
number, read by the alerts with ``scalar()``. Either way it is one whole YAML field, which a
kustomize replacement or a Helm value can set without touching the rule's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RUNBOOKS = "https://example.invalid/smartid/smartid-operator/blob/main/docs/runbooks.md"
OPERATOR_JOB = "smartid-operator"
AGENT_JOB = "smartid-recovery-agent"
GROUP = "smartid-alerts"  # no dot: kustomize field paths split on dots


@dataclass(frozen=True)
class Threshold:
    name: str  # camelCase: the Helm value and the kustomize ConfigMap key
    default: str
    help: str

    @property
    def is_duration(self) -> bool:
        return self.name.endswith("For")

    @property
    def record(self) -> str:
        """The recording rule holding a number threshold."""
        return "smartid:alert_threshold:" + re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    def ref(self) -> str:
        return f"scalar({self.record})"


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("mongoUnreachableFor", "2m", "how long the operator's ping must fail"),
    Threshold("recoveryBacklogFor", "10m",
              "how long records may wait on the recovery volume while Mongo answers"),
    Threshold("recoverySkippedFor", "10m", "how long skipped recovery inputs may stay"),
    Threshold("recoveryAgentStaleSeconds", "180",
              "age of the agent's last pass (seconds) that counts as not reporting"),
    Threshold("recoveryAgentNotReportingFor", "5m", "how long the agent may be silent"),
    Threshold("backupFailedFor", "0m", "how long the last backup may stay failed"),
    Threshold("backupMaxAgeSeconds", "93600",
              "the newest verified dump may be this old (seconds; 26 h suits a daily "
              "schedule)"),
    Threshold("backupNotVerifiedFor", "15m", "how long the verified dump may be too old"),
    Threshold("backupJobCannotStartFor", "5m", "how long a backup Job's pod may be stuck"),
    Threshold("outageTestFailedFor", "0m", "how long the last outage test may stay failed"),
    Threshold("schemaNotReadyFor", "15m", "how long SchemaReady may be False"),
    Threshold("operatorDownFor", "5m", "how long no operator may be scraped"),
    Threshold("reconcileErrorsFor", "10m", "how long reconcile passes may keep failing"),
)
BY_NAME = {t.name: t for t in THRESHOLDS}
NUMBERS = tuple(t for t in THRESHOLDS if not t.is_duration)


def _t(name: str) -> str:
    return BY_NAME[name].ref()


DB = "SmartIDDatabase {{ $labels.namespace }}/{{ $labels.name }}"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    for_: str  # a duration threshold's name
    summary: str
    description: str

    @property
    def anchor(self) -> str:
        return self.name.lower()


ALERTS: tuple[Alert, ...] = (
    Alert("SmartIDMongoUnreachable", "critical",
          "smartid_mongo_reachable == 0", "mongoUnreachableFor",
          f"Mongo of {DB} is unreachable",
          f"The operator cannot ping database {{{{ $labels.database }}}} of {DB}. Recordings "
          "that reach storage meanwhile wait there and are indexed when it answers."),
    Alert("SmartIDRecoveryBacklog", "warning",
          "smartid_recovery_pending > 0\n"
          "  and on(namespace, name, pod) smartid_recovery_mongo_reachable == 1",
          "recoveryBacklogFor",
          f"Recovery backlog of {DB} is not shrinking",
          f"{{{{ $value }}}} record(s) on the recovery volume of {DB} are not indexed although "
          "Mongo answers the recovery agent."),
    Alert("SmartIDRecoveryInputsSkipped", "warning",
          "smartid_recovery_skipped > 0", "recoverySkippedFor",
          f"Recovery skips inputs of {DB}",
          f"{{{{ $value }}}} input(s) on the recovery volume of {DB} break the storage contract "
          "and cannot be indexed; they are listed in status.recovery.skipped."),
    Alert("SmartIDRecoveryAgentNotReporting", "warning",
          f'up{{job="{AGENT_JOB}"}} == 0\n'
          f"or (time() - smartid_recovery_last_pass_timestamp_seconds\n"
          f"      > {_t('recoveryAgentStaleSeconds')}\n"
          "    and on(namespace, name, pod) smartid_recovery_mongo_reachable == 1)\n"
          'or smartid_database_condition{type="Recovered", reason="AgentNotReporting"} == 0',
          "recoveryAgentNotReportingFor",
          f"Recovery agent of {DB} is not reporting",
          f"The recovery agent of {DB} is not scraped, has not finished a pass for too long "
          "while Mongo answers, or has not reported to the operator. Writes that reach storage "
          "are not being indexed."),
    Alert("SmartIDBackupFailed", "warning",
          "smartid_backup_last_failure_timestamp_seconds\n"
          "  > on(namespace, name) (smartid_backup_last_success_timestamp_seconds\n"
          "    or on(namespace, name) smartid_backup_last_failure_timestamp_seconds * 0)",
          "backupFailedFor",
          f"Last backup of {DB} failed",
          f"The newest backup Job of {DB} failed and none succeeded since; the reason is in "
          "status.backup.lastFailure."),
    Alert("SmartIDBackupNotVerified", "critical",
          f"(time() - smartid_backup_last_verified_timestamp_seconds > {_t('backupMaxAgeSeconds')}"
          "\n  unless on(namespace, name) smartid_backup_suspended == 1)\n"
          f"or (time() - smartid_backup_schedule_created_timestamp_seconds"
          f" > {_t('backupMaxAgeSeconds')}\n"
          "  unless on(namespace, name) smartid_backup_last_verified_timestamp_seconds\n"
          "  unless on(namespace, name) smartid_backup_suspended == 1)",
          "backupNotVerifiedFor",
          f"No verified backup of {DB} within the expected interval",
          f"The newest dump of {DB} whose restore was verified is {{{{ $value | "
          "humanizeDuration }}, or no dump has been verified since the schedule began that "
          "long ago. A restore could not be trusted to be recent."),
    Alert("SmartIDBackupJobCannotStart", "warning",
          'smartid_database_condition{type="BackupHealthy", reason="JobCannotStart"} == 0',
          "backupJobCannotStartFor",
          f"Backup Job of {DB} cannot start",
          f"A backup Job of {DB} cannot start its pod (image, volume or config); the "
          "condition BackupHealthy says which."),
    Alert("SmartIDOutageTestFailed", "warning",
          "smartid_outage_test_passed == 0", "outageTestFailedFor",
          f"Last outage test of {DB} failed",
          f"The last outage test of {DB} did not see every write of the outage reindexed; "
          "status.lastOutageTest and its report say which were lost."),
    Alert("SmartIDSchemaNotReady", "critical",
          'smartid_database_condition{type="SchemaReady"} == 0\n'
          "  unless on(namespace, name) smartid_mongo_reachable == 0",
          "schemaNotReadyFor",
          f"Schema of {DB} is not ready ({{{{ $labels.reason }}}})",
          f"SchemaReady of {DB} is False with reason {{{{ $labels.reason }}}}: a migration is "
          "locked, failed, or an applied migration drifted from the catalog."),
    Alert("SmartIDOperatorDown", "critical",
          f'absent(up{{job="{OPERATOR_JOB}"}} == 1)', "operatorDownFor",
          "The SmartID operator is down",
          "No smartid-operator target is up: no SmartIDDatabase in any namespace is reconciled, "
          "and its backups, recovery and outage tests go unobserved."),
    Alert("SmartIDReconcileErrors", "warning",
          'sum by (namespace, name) (\n'
          '  increase(smartid_reconciles_total{result=~"error|invalid"}[5m])) > 0',
          "reconcileErrorsFor",
          f"Reconciling {DB} keeps failing",
          f"Reconcile passes of {DB} failed {{{{ $value | humanize }}}} time(s) in 5 minutes: "
          "the spec or what it points at is invalid (phase Failed), or the operator hit an "
          "error; its Events and log say which."),
)


def runbook_url(alert: Alert, base: str = RUNBOOKS) -> str:
    return f"{base}#{alert.anchor}"
