"""The outage test's pure parts: settings, ids, the verdict and its maths, timings, the report,
the timeline's series and picture, scenario files, schedules, and the runner's table."""

from __future__ import annotations

import datetime
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from smartid_operator.chaos import children as manifests
from smartid_operator.chaos import schedule
from smartid_operator.chaos.engine import report, runner
from smartid_operator.chaos.engine.model import (
    Settings,
    Tally,
    Timings,
    judge,
    last_outage_test,
    recording_ids,
    resolve,
    result_status,
    segment_ids,
)
from smartid_operator.chaos.engine.scenario import SCENARIOS, Scenario, ScenarioError, load, parse
from smartid_operator.chaos.engine.timeline import Timeline, availability, cumulative, render
from smartid_operator.recovery.engine import contract
from smartid_operator.spec import ChaosSpec
from smartid_operator.spec import parse as parse_spec
from smartid_operator.spec import parse_outage_test as parse_run

REPO = Path(__file__).resolve().parents[2]
T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


# -- settings and ids -------------------------------------------------------------------------

def test_a_run_overrides_the_database_defaults_field_by_field() -> None:
    chaos = ChaosSpec(outage_seconds=30, recordings=50, segments_per_recording=20)
    assert resolve(parse_run({"database": "db"}), chaos) == Settings(30, 50, 20, 300)
    assert resolve(parse_run({"database": "db", "outageSeconds": 7, "segmentsPerRecording": 0,
                              "recoveryTimeoutSeconds": 9}), chaos) == Settings(7, 50, 0, 9)
    assert Settings(7, 50, 20).segments == 1000


def test_the_deadline_bounds_every_step_and_grows_with_the_run() -> None:
    small, big = Settings(10, 3, 10, 60), Settings(600, 500, 20, 600)
    assert small.deadline_seconds > 10 + 60
    assert big.deadline_seconds - small.deadline_seconds > 590 + 540
    assert small.document()["deadlineSeconds"] == small.deadline_seconds


def test_ids_follow_the_recovery_contract_and_are_derived_from_the_run_name() -> None:
    rids = recording_ids("smartid-short-0101120000-c1", 3)
    assert rids == [f"chaos-smartid-short-0101120000-c1-r00000{i}" for i in range(3)]
    assert all(contract.valid_id(r) for r in rids)
    # The longest run name the CRD allows still makes valid ids.
    assert contract.valid_id(recording_ids("x" * 50, 100000)[-1])
    assert segment_ids("r", 2, 2) == ["chaos-r-r000000:0", "chaos-r-r000000:1",
                                      "chaos-r-r000001:0", "chaos-r-r000001:1"]
    assert segment_ids("r", 2, 0) == []


# -- the verdict ------------------------------------------------------------------------------

def tallies(lost: tuple[str, ...] = (), extra: int = 0, by_writer: int = 0,
            final_shift: int = 0) -> tuple[Tally, Tally]:
    rec = Tally(baseline=7, written=50, present=50 - len(lost), tagged=50 - len(lost) + extra,
                final=57 - len(lost) + extra + final_shift, by_writer=by_writer, lost_ids=lost)
    seg = Tally(baseline=100, written=1000, present=1000, tagged=1000, final=1100)
    return rec, seg


def test_every_id_present_once_and_counts_adding_up_is_a_pass() -> None:
    rec, seg = tallies()
    verdict = judge(rec, seg, outage_seconds=12.34, recovery_seconds=1.5, waited_seconds=2)
    assert (verdict.result, verdict.reason) == ("Passed", "AllReindexed")
    assert "12.3 s outage" in verdict.message and "1.5 s after" in verdict.message
    assert (rec.reindexed, rec.lost, rec.duplicated, rec.expected) == (50, 0, 0, 57)


def test_lost_ids_fail_the_run_and_are_named_first_ones_first() -> None:
    lost = tuple(f"chaos-x-r{i:06d}" for i in range(25))
    rec, seg = tallies(lost=lost)
    verdict = judge(rec, seg, outage_seconds=10, recovery_seconds=None, waited_seconds=30)
    assert verdict.result == "Failed" and verdict.reason == "Lost"
    assert "25 of 1050 written ids missing 30 s after Mongo returned" in verdict.message
    assert "chaos-x-r000000, chaos-x-r000001" in verdict.message
    assert "chaos-x-r000019 (and 5 more)" in verdict.message
    assert "chaos-x-r000020" not in verdict.message
    status = result_status(verdict, rec, seg, Timings())
    assert (status["lost"], status["lostIdsTotal"], len(status["lostIds"])) == (25, 25, 20)
    assert status["written"] == 1050 and status["reindexed"] == 1025


def test_a_duplicate_under_another_id_fails_the_run() -> None:
    rec, seg = tallies(extra=2)
    verdict = judge(rec, seg, outage_seconds=10, recovery_seconds=1, waited_seconds=1)
    assert (verdict.result, verdict.reason) == ("Failed", "Duplicated")
    assert "2 recordings and 0 segments indexed more than once" in verdict.message
    # The count shows it too: 59 recordings where 57 were expected.
    assert verdict.reasons == ("Duplicated", "CountMismatch")


def test_writes_mongo_accepted_during_the_outage_mean_the_outage_was_not_real() -> None:
    rec, seg = tallies(by_writer=3)
    verdict = judge(rec, seg, outage_seconds=10, recovery_seconds=1, waited_seconds=1)
    assert verdict.reason == "OutageNotEffective" and rec.reindexed == 47


def test_a_count_that_does_not_add_up_fails_even_with_every_id_present() -> None:
    rec, seg = tallies(final_shift=-1)
    verdict = judge(rec, seg, outage_seconds=10, recovery_seconds=1, waited_seconds=1)
    assert verdict.reasons == ("CountMismatch",)
    assert "recordings: 56 documents, expected 7 + 50 = 57" in verdict.message


def test_timings_derive_outage_and_recovery_seconds_and_keep_the_first_mark() -> None:
    timings = Timings()
    for name, seconds in (("started", 0), ("outageStart", 1), ("unreachableConfirmed", 1.5),
                          ("writesDone", 4), ("restored", 11.5), ("reachable", 12.25),
                          ("fullyReindexed", 14.0), ("finished", 15)):
        timings.mark(name, at(seconds))
    timings.mark("restored", at(99))  # a second restore keeps the first moment
    doc = timings.document()
    assert doc["restored"] == "2026-01-01T12:00:11.500Z"
    assert (doc["outageSeconds"], doc["recoverySeconds"], doc["runSeconds"]) == (10.75, 1.75,
                                                                                15.0)
    assert Timings.from_document(doc).document() == doc


def test_last_outage_test_summarises_the_run_for_the_database() -> None:
    rec, seg = tallies()
    verdict = judge(rec, seg, outage_seconds=10, recovery_seconds=1.25, waited_seconds=1)
    timings = Timings({"reachable": at(10), "fullyReindexed": at(11.25), "finished": at(12)})
    summary = last_outage_test("run-1", {**result_status(verdict, rec, seg, timings)})
    assert summary == {"result": "Passed", "run": "run-1", "reason": "AllReindexed",
                       "message": verdict.message, "written": 1050, "reindexed": 1050,
                       "lost": 0, "duplicated": 0, "recoverySeconds": 1.25,
                       "finishedAt": "2026-01-01T12:00:12.000Z"}


# -- report and timeline ----------------------------------------------------------------------

def test_the_report_holds_status_lost_ids_and_series_and_shrinks_to_fit() -> None:
    status = {"phase": "Failed", "reason": "Lost", "written": 3, "lost": 2, "timings": {}}
    doc = report.build(run="r", namespace="ns", database="db", status=status,
                       lost_ids=[f"id{i}" for i in range(5000)],
                       series={"written": [[0.0, 1.0]] * 50000})
    assert (doc["result"], doc["lostIdsTotal"], len(doc["lostIds"])) == ("Failed", 5000, 1000)
    raw = report.encode(doc)
    assert len(raw) <= report.MAX_BYTES
    assert json.loads(raw)["series"] == {"omitted": "too large for the ConfigMap"}


def test_availability_keeps_changes_and_cumulative_keeps_its_shape_within_bounds() -> None:
    samples = [(float(t), not 3 <= t < 7) for t in range(10)]
    assert availability(samples) == [(0.0, 1.0), (3.0, 0.0), (7.0, 1.0), (9.0, 1.0)]
    assert cumulative([3.0, 1.0, 2.0]) == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    many = cumulative([float(i) for i in range(10000)], max_points=300)
    assert len(many) <= 300 and many[0] == (0.0, 1.0) and many[-1] == (9999.0, 10000.0)
    assert cumulative([]) == []


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def test_the_timeline_picture_is_a_png_of_the_documented_size() -> None:
    t0 = T0.timestamp()
    timeline = Timeline(
        title="r: PASSED", passed=True, origin=t0,
        mongo=availability([(t0 + i / 2, not 1 <= i / 2 < 9) for i in range(-2, 30)]),
        written=cumulative([t0 + 2 + i / 100 for i in range(300)]),
        indexed=cumulative([t0 + 10 + i / 300 for i in range(300)]), total_written=300,
        marks={"outageStart": t0, "unreachableConfirmed": t0 + 1, "reachable": t0 + 9})
    png = render(timeline)
    assert png_size(png) == (1000, 600)
    assert len(png) > 20_000  # drawn, not blank
    assert timeline.series()["mongoAvailable"][1] == [1.0, 0.0]


# -- manifests --------------------------------------------------------------------------------

RUN = {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDOutageTest",
       "metadata": {"name": "r1", "namespace": "ns", "uid": "run-uid"},
       "spec": {"database": "db"}}


def database_spec(**extra: Any) -> Any:
    return parse_spec({"mongo": {"uriSecretRef": {"name": "sec", "key": "k"},
                                 "workload": {"name": "mongo"}},
                       "recovery": {"enabled": True,
                                    "storage": {"persistentVolumeClaim": "recs"}}, **extra})


def test_the_writer_job_mounts_the_recovery_claim_and_reads_uri_and_settings() -> None:
    job = manifests.writer_job(RUN, "db", database_spec(), Settings(10, 3, 4), "img:1")
    assert job["metadata"]["name"] == "r1-writer"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "run-uid"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "img:1"
    assert container["args"] == ["chaos", "write", "--storage=/recordings", "--run=r1",
                                 "--recordings=3", "--segments-per-recording=4"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "sec", "key": "k"}
    assert container["envFrom"] == [{"configMapRef": {"name": "db-settings"}}]
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "recs"}
    assert {"name": "data", "mountPath": "/recordings",
            "readOnly": False} in container["volumeMounts"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    term = pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"][
        "app.kubernetes.io/component"] == "recovery"  # beside the agent (ReadWriteOnce)


def test_owner_references_are_added_once_and_never_steal_the_controller() -> None:
    db = {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDDatabase",
          "metadata": {"name": "db", "uid": "db-uid"}}
    refs = manifests.with_owner([], db)
    assert refs is not None and refs[0]["controller"] is True
    assert manifests.with_owner(refs, db) is None
    other = manifests.with_owner([{"uid": "x", "controller": True}], db)
    assert other is not None and other[1]["controller"] is False


def test_the_report_config_map_carries_the_picture_as_binary_data() -> None:
    cm = manifests.report_config_map(RUN, "db", b'{"a": 1}', b"\x89PNG")
    assert cm["metadata"]["name"] == "r1-report"
    assert cm["data"] == {"report.json": '{"a": 1}'}
    assert cm["binaryData"] == {"timeline.png": "iVBORw=="}


# -- scenarios --------------------------------------------------------------------------------

def test_the_shipped_scenarios_parse_and_cover_the_seed_table() -> None:
    shipped = {p.stem: load(str(p)) for p in sorted(SCENARIOS.glob("*.yaml"))}
    assert {"short", "medium", "long", "cycles"} <= set(shipped)
    assert shipped["short"].outage_seconds < 60 and 1 <= shipped["short"].recordings <= 5
    assert 60 <= shipped["medium"].outage_seconds <= 600
    assert 5 <= shipped["medium"].recordings <= 50
    assert shipped["long"].outage_seconds >= 600 and shipped["long"].recordings >= 50
    assert shipped["cycles"].cycles > 1
    assert load("short") == shipped["short"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "x", "recordings": 1, "segmentsPerRecording": 0}, "outageSeconds is required"),
    ({"name": "x", "outageSeconds": 4, "recordings": 1, "segmentsPerRecording": 0},
     "outageSeconds must be an integer from 5 to 3600, got 4"),
    ({"name": "x", "outageSeconds": 5, "recordings": True, "segmentsPerRecording": 0},
     "recordings must be an integer"),
    ({"name": "X y", "outageSeconds": 5, "recordings": 1, "segmentsPerRecording": 0},
     "name must be lowercase"),
    ({"name": "x", "outageSeconds": 5, "recordings": 1, "segmentsPerRecording": 0,
      "outage": 3}, "unknown field(s) outage"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_bad_scenarios_are_refused_naming_the_field(doc: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(doc)


def test_a_scenario_becomes_a_run_spec() -> None:
    scenario = Scenario("s", 10, 3, 4, cycles=2, recovery_timeout_seconds=60)
    assert scenario.run_spec("db") == {"database": "db", "outageSeconds": 10, "recordings": 3,
                                       "segmentsPerRecording": 4, "recoveryTimeoutSeconds": 60}


# -- schedules --------------------------------------------------------------------------------

def test_a_schedule_fires_once_for_the_latest_missed_time_and_not_before() -> None:
    since = datetime.datetime(2026, 1, 1, 1, 59, 30, tzinfo=datetime.UTC)
    assert schedule.due("0 2 * * *", since, since + datetime.timedelta(seconds=20)) is None
    fire = schedule.due("0 2 * * *", since, since + datetime.timedelta(seconds=40))
    assert fire == datetime.datetime(2026, 1, 1, 2, 0, tzinfo=datetime.UTC)
    # Three fire times missed: one run, for the latest.
    assert schedule.due("*/5 * * * *", since, since + datetime.timedelta(minutes=14)) == \
        datetime.datetime(2026, 1, 1, 2, 10, tzinfo=datetime.UTC)
    assert schedule.next_after("@hourly", since).minute == 0


def test_scheduled_run_names_fit_the_crd_and_are_stable_per_fire_time() -> None:
    fire = datetime.datetime(2026, 3, 4, 5, 6, tzinfo=datetime.UTC)
    assert schedule.run_name("smartid", fire) == "smartid-s202603040506"
    long_name = schedule.run_name("a." + "b" * 60, fire)
    assert len(long_name) <= 50 and "." not in long_name
    db = {"metadata": {"name": "smartid", "namespace": "ns", "uid": "u"}}
    run = manifests.scheduled_run(db, fire)
    assert run["metadata"]["labels"][schedule.SCHEDULED_LABEL] == "true"
    assert run["metadata"]["ownerReferences"][0]["kind"] == "SmartIDDatabase"
    assert run["spec"] == {"database": "smartid"}


# -- the runner's output ----------------------------------------------------------------------

def test_runner_names_and_table() -> None:
    name = runner.run_name("db.with.dots-and-a-long-name", "medium-plus-long", 12, T0)
    assert name == "db-with-dots-and-a-medium-plus-0101120000-c12" and len(name) <= 50
    passed = runner.Outcome("r1", {"phase": "Passed", "written": 33, "reindexed": 33,
                                   "lost": 0, "duplicated": 0, "recoverySeconds": 1.25,
                                   "timings": {"outageSeconds": 10.5, "runSeconds": 20.0}})
    failed = runner.Outcome("r2", {"phase": "Failed", "reason": "Lost", "message": "2 missing",
                                   "written": 33, "reindexed": 31, "lost": 2})
    lines = runner.table([passed, failed]).splitlines()
    assert lines[0].split() == ["RUN", "RESULT", "WRITTEN", "REINDEXED", "LOST", "DUPLICATED",
                                "OUTAGE", "s", "RECOVERY", "s", "RUN", "s"]
    assert lines[1].split() == ["r1", "Passed", "33", "33", "0", "0", "10.5", "1.2", "20.0"]
    assert lines[2].split()[:5] == ["r2", "Failed", "33", "31", "2"]
    assert lines[3] == "r2: Lost: 2 missing"
    assert runner.progress_line(3.25, {"phase": "Running", "step": "Writing",
                                       "message": "m"}).split() == ["[", "3.2", "s]",
                                                                    "Running", "Writing", "m"]
