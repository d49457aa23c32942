"""The alerting rules in a real Prometheus during real faults on the test bed.

Prometheus (built from the pinned Go module) scrapes the operator's pod and the recovery
agent's pod through the PodMonitors of ``deploy/components/monitoring`` (the test bed plays
the Prometheus Operator's discovery, see ``prometheus_server``) and evaluates the generated
rules with short thresholds. One story runs once for the module: a verified backup, a passing
outage test, Mongo scaled to 0 (a backup Job fails meanwhile), Mongo back, an outage test that
fails because the agent is stopped. The tests read what Prometheus recorded: ``ALERTS`` for
the alerts, the dashboard's queries for the panels.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kubernetes import client

from smartid_operator.monitoring import dashboard, render
from smartid_operator.monitoring.alerts import AGENT_JOB, OPERATOR_JOB
from smartid_testbed.cluster import wait_for
from smartid_testbed.prometheus_server import PrometheusServer
from smartid_testbed.testbed import TestBed
from tests.cluster.backups import backup_job, backup_spec, backups_claim
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    create_claim,
    create_run,
    database,
    new_namespace,
    pod_process,
    scale,
    start_mongo,
    wait_phase,
    wait_run,
)

INTERVAL = 1.0  # scrape and rule evaluation, seconds
MONGO_FOR = 5.0  # the Mongo-unreachable alert's `for`, seconds
THRESHOLDS = {"mongoUnreachableFor": f"{MONGO_FOR:g}s", "backupFailedFor": "0s",
              "outageTestFailedFor": "0s"}


@pytest.fixture(scope="module")
def prometheus(testbed: TestBed, operator: Operator,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with PrometheusServer(testbed.kubeconfig, tmp_path_factory.mktemp("prometheus"),
                          render.rules_file(THRESHOLDS), render.pod_monitors(),
                          namespace=operator.namespace, interval=INTERVAL) as prom:
        print(f"Prometheus at {prom.url}")
        yield prom


@dataclass
class Story:
    namespace: str
    started: float
    # (seconds since the story began, state) of the Mongo alert as polled from /api/v1/alerts
    mongo_polls: list[tuple[float, str]] = field(default_factory=list)
    scaled_down_at: float = 0.0  # Mongo's StatefulSet scaled to 0 (wall clock)
    mongo_down_at: float = 0.0  # the last Mongo pod gone
    mongo_zero_scraped_at: float = 0.0  # the first scrape of smartid_mongo_reachable 0
    scaled_up_at: float = 0.0  # Mongo's StatefulSet scaled back to 1
    resolved_at: float = 0.0
    backup_failed_at: float = 0.0
    outage_failed_at: float = 0.0
    broken_run_at: float = 0.0
    ended: float = 0.0


def _mongo_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector="app=mongo").items


def _watch_alert(prom: PrometheusServer, story: Story, until: str, timeout: float) -> float:
    """Poll the Mongo alert until its state is ``until`` ("" = gone); returns when."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [a["state"] for a in prom.alerts("SmartIDMongoUnreachable",
                                                  namespace=story.namespace)]
        state = states[0] if states else ""
        story.mongo_polls.append((time.time() - story.started, state))
        if state == until:
            return time.time()
        time.sleep(0.2)
    raise AssertionError(f"the Mongo alert did not reach {until or 'resolved'!r} in "
                         f"{timeout:.0f} s: {story.mongo_polls[-10:]}")


def _first_zero_scrape(prom: PrometheusServer, namespace: str, since: float) -> float:
    window = int(time.time() - since) + 2
    series = prom.query(f'smartid_mongo_reachable{{namespace="{namespace}"}}[{window}s]')
    zeros = [float(ts) for s in series for ts, value in s["values"]
             if value == "0" and float(ts) >= since]
    assert zeros, series
    return min(zeros)


@pytest.fixture(scope="module")
def story(prometheus: PrometheusServer, operator: Operator, testbed: TestBed,
          api_client: client.ApiClient, core: client.CoreV1Api,
          custom: client.CustomObjectsApi, mongo_module: str,
          module_namespace: str) -> Story:
    namespace = module_namespace
    apps, batch = client.AppsV1Api(api_client), client.BatchV1Api(api_client)
    story = Story(namespace, time.time())
    create_claim(core, namespace, "recordings")
    backups_claim(core, namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database(
        backup=backup_spec(),
        recovery={"enabled": True, "storage": {"persistentVolumeClaim": "recordings"}},
        chaos={"allowDisruption": True, "outageSeconds": 5, "recordings": 3,
               "segmentsPerRecording": 5}))
    # A second database whose Secret is missing: its passes fail (reconcile errors).
    broken = database("broken")
    broken["spec"]["mongo"]["uriSecretRef"]["name"] = "missing"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broken)
    wait_phase(custom, namespace, "Ready", timeout=120)
    wait_for(lambda: prometheus.targets_up(AGENT_JOB) and prometheus.query(
        f'smartid_recovery_last_pass_timestamp_seconds{{namespace="{namespace}"}} > 0'),
        timeout=60, what="the recovery agent scraped")

    assert backup_job(testbed, batch, namespace, "good") == "Complete"
    create_run(custom, namespace, "passing")
    assert wait_run(custom, namespace, "passing", timeout=180)["phase"] == "Passed"

    # Mongo down for real: the pod is deleted, its server process ends. (The outage tests'
    # own outages are real too: they may fire the alert, which is why this window is kept.)
    story.scaled_down_at = time.time()
    scale(apps, namespace, "mongo", 0)
    wait_for(lambda: not _mongo_pods(core, namespace), timeout=60, what="mongo pods gone")
    story.mongo_down_at = time.time()
    _watch_alert(prometheus, story, "firing", timeout=MONGO_FOR + 60)
    story.mongo_zero_scraped_at = _first_zero_scrape(prometheus, namespace,
                                                     story.scaled_down_at)

    assert backup_job(testbed, batch, namespace, "during-outage") == "Failed"
    story.backup_failed_at = time.time()
    wait_for(lambda: prometheus.alerts("SmartIDBackupFailed", namespace=namespace,
                                       name="smartid", state="firing"),
             timeout=60, what="SmartIDBackupFailed firing")

    story.scaled_up_at = time.time()
    scale(apps, namespace, "mongo", 1)
    story.resolved_at = _watch_alert(prometheus, story, "", timeout=60)
    wait_phase(custom, namespace, "Ready", timeout=120)

    # An outage test that fails: the agent hangs (its pod still looks Running).
    agent = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=recovery").items[0]
    pid = pod_process(testbed, agent.metadata.name, contains="recovery agent")
    os.kill(pid, signal.SIGSTOP)
    story.broken_run_at = time.time()
    try:
        create_run(custom, namespace, "broken", outageSeconds=5, recordings=3,
                   segmentsPerRecording=2, recoveryTimeoutSeconds=6)
        assert wait_run(custom, namespace, "broken", timeout=180)["phase"] == "Failed"
        story.outage_failed_at = time.time()
        wait_for(lambda: prometheus.alerts("SmartIDOutageTestFailed", namespace=namespace,
                                           state="firing"),
                 timeout=60, what="SmartIDOutageTestFailed firing")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_phase(custom, namespace, "Ready", timeout=120)
    time.sleep(3 * INTERVAL)  # the agent's and operator's last state scraped
    story.ended = time.time()
    return story


# -- the module's namespace and Mongo (the story spans the module) ----------------------------

@pytest.fixture(scope="module")
def module_namespace(core: client.CoreV1Api) -> Iterator[str]:
    with new_namespace(core, f"t-alerts-{os.getpid() % 10000}") as name:
        yield name


@pytest.fixture(scope="module")
def mongo_module(testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
                 module_namespace: str) -> str:
    return start_mongo(testbed, api_client, core, module_namespace)


# -- the tests ------------------------------------------------------------------------------------

def test_both_podmonitors_select_their_pods_and_prometheus_scrapes_them(
        prometheus: PrometheusServer, story: Story) -> None:
    operator = prometheus.targets_up(OPERATOR_JOB)
    agents = [t for t in prometheus.targets_up(AGENT_JOB)
              if t["labels"]["namespace"] == story.namespace]
    assert len(operator) == 1 and len(agents) == 1, (operator, agents)
    assert agents[0]["labels"]["name"] == "smartid"
    # Each pod on its own address, as pods have their own IPs.
    assert agents[0]["scrapeUrl"].split("/")[2].split(":")[0] != "127.0.0.1"


def test_mongo_scaled_to_zero_goes_pending_then_firing_within_for_plus_two_scrapes_then_resolves(
        prometheus: PrometheusServer, story: Story) -> None:
    history = prometheus.alert_history("SmartIDMongoUnreachable", story.started,
                                       namespace=story.namespace, name="smartid")
    first_outage = [(ts, state) for ts, state in history
                    if story.scaled_down_at <= ts <= story.resolved_at]
    states = [state for _, state in first_outage]
    assert "pending" in states and "firing" in states, history
    assert states.index("pending") < states.index("firing"), history
    first_pending = next(ts for ts, s in first_outage if s == "pending")
    first_firing = next(ts for ts, s in first_outage if s == "firing")
    zero = story.mongo_zero_scraped_at
    print(f"scaled to 0 -> first 0 scraped {zero - story.scaled_down_at:.1f} s, pending "
          f"{first_pending - zero:.1f} s after it, firing {first_firing - zero:.1f} s after it "
          f"(for {MONGO_FOR:g} s, scrape {INTERVAL:g} s); resolved "
          f"{story.resolved_at - story.scaled_up_at:.1f} s after the scale back to 1")
    assert zero <= first_pending and first_firing - first_pending >= MONGO_FOR - 0.01
    assert first_firing - zero <= MONGO_FOR + 2 * INTERVAL, history
    # Resolved: no ALERTS sample between the return and the next outage test.
    assert not [ts for ts, _ in history
                if story.resolved_at + INTERVAL < ts < story.broken_run_at], history


def test_a_failed_backup_job_fires_the_backup_failed_alert(
        prometheus: PrometheusServer, story: Story) -> None:
    history = prometheus.alert_history("SmartIDBackupFailed", story.started,
                                       namespace=story.namespace, name="smartid")
    firing = [ts for ts, s in history if s == "firing"]
    assert firing and min(firing) >= story.scaled_down_at, history
    print(f"SmartIDBackupFailed firing {min(firing) - story.backup_failed_at:+.1f} s after "
          f"the Job was seen Failed")
    # The broken database has no backups: nothing about its backups fires.
    assert not prometheus.alert_history("SmartIDBackupFailed", story.started,
                                        namespace=story.namespace, name="broken")


def test_a_failed_outage_test_fires_the_outage_test_alert(
        prometheus: PrometheusServer, story: Story) -> None:
    history = prometheus.alert_history("SmartIDOutageTestFailed", story.started,
                                       namespace=story.namespace, name="smartid")
    firing = [ts for ts, s in history if s == "firing"]
    assert firing, history
    # The passing run before it fired nothing.
    assert min(firing) >= story.resolved_at, history


def test_every_dashboard_query_returns_series_on_the_test_bed(
        prometheus: PrometheusServer, story: Story) -> None:
    empty = []
    for title, expr in dashboard.queries():
        series = prometheus.query_range(expr, story.started, story.ended, step=2)
        if not series:
            empty.append((title, expr))
    assert not empty, empty


def test_the_recovery_agent_and_operator_series_carry_the_database(
        prometheus: PrometheusServer, story: Story) -> None:
    sel = f'namespace="{story.namespace}", name="smartid"'
    for metric in ("smartid_recovery_pending", "smartid_recovery_mongo_reachable",
                   "smartid_mongo_reachable", "smartid_backup_last_verified_timestamp_seconds",
                   "smartid_outage_test_passed"):
        assert prometheus.query(f"{metric}{{{sel}}}"), metric
