"""One outage test, start to end: one asyncio task in the operator, the run's only writer.

Steps (``status.step``): Preconditions, Baseline, ScalingDown, ConfirmingOutage, Writing,
Holding, Restoring, WaitingForMongo, WaitingForRecovery, Verifying, Reporting, Done.

Safety: the workload's replicas are written into its annotation before it is touched, and
every way out of the outage (success, failure, timeout, abort, operator shutdown) goes through
``_restore`` in a ``finally``; a SIGKILLed operator leaves the annotation, which the next one
reads (``recover``). Only the workload the database's spec names is ever touched.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smartid_operator import PLURAL as DATABASES
from smartid_operator import mongo
from smartid_operator.chaos import ANNOTATION, KIND, PLURAL
from smartid_operator.chaos import report as reports
from smartid_operator.chaos.manifests import (
    REPORT_JSON,
    TIMELINE_PNG,
    report_config_map,
    report_name,
    with_owner,
    writer_job,
    writer_name,
)
from smartid_operator.chaos.model import (
    ABORTED,
    FAILED,
    PASSED,
    REACHABLE_WAIT,
    REFUSED,
    RUNNING,
    UNREACHABLE_WAIT,
    WRITER_START_WAIT,
    Settings,
    Tally,
    Timings,
    Verdict,
    judge,
    last_outage_test,
    recording_ids,
    resolve,
    result_status,
    segment_ids,
)
from smartid_operator.chaos.probe import RECORDINGS, SEGMENTS, Found, Probe
from smartid_operator.chaos.timeline import Timeline, availability, cumulative, render
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.kube import Kube
from smartid_operator.spec import DatabaseSpec, WorkloadRef, parse
from smartid_operator.status import Observation

OUTAGE_TEST_PASSED = "OutageTestPassed"  # a condition of the database, not part of Ready

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, str]
Body = Mapping[str, Any]


@dataclass
class Env:
    """What a run may touch, injected so the steps are testable against fakes."""

    kube: Kube
    in_kube: Callable[[Callable[[], Any]], Awaitable[Any]]
    pool: mongo.Pool
    image: str
    event: Callable[[Body, str, str, str], None]  # body, type, reason, message
    database: Callable[[Key], Body | None]  # the SmartIDDatabase as last seen
    database_status: Callable[[Key], Body]  # its status as its worker last wrote it
    # -> status.lastOutageTest, and the OutageTestPassed condition when there is a verdict
    report: Callable[[Key, dict[str, Any], Observation | None], None]
    active_run: Callable[[Key, str], str | None]  # another active run of the database
    probe: Callable[[mongo.Pool, str, str, str, float], Probe] = Probe
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    # Seconds between probes while waiting for a change: the timings (Mongo back, everything
    # reindexed) are the operator's own observations, late by at most this and one query.
    poll: float = 0.1
    sample: float = 0.5  # seconds between availability samples for the timeline

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self.in_kube(functools.partial(fn, *args))
        return result

    async def database_body(self, key: Key) -> Body | None:
        """As its worker last saw it; read from the API when there is no worker yet (at
        start-up a run's event may come before its database's)."""
        body = self.database(key)
        if body is None:
            body = await self.call(self.kube.custom_object, DATABASES, *key)
        return body


class Refusal(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class Failure(Refusal):
    """The run started and cannot go on: it fails with this reason (Mongo is restored)."""


@dataclass
class Plan:
    """What the preconditions established."""

    spec: DatabaseSpec
    settings: Settings
    ref: WorkloadRef
    replicas: int
    probe: Probe
    sampler: Probe


@dataclass
class Collected:
    baseline: tuple[int, int] = (0, 0)
    samples: list[tuple[float, bool]] = field(default_factory=list)
    found: tuple[dict[str, Found], dict[str, Found]] = ({}, {})
    tallies: tuple[Tally, Tally] | None = None
    verdict: Verdict | None = None


def describe(ref: WorkloadRef) -> str:
    return f"{ref.kind}/{ref.name}"


class Execution:
    def __init__(self, env: Env, run: Body) -> None:
        meta = run["metadata"]
        self.env = env
        self.run = run
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.database: str = run["spec"]["database"]
        self.db_key: Key = (self.namespace, self.database)
        self.status: dict[str, Any] = {}
        self.timings = Timings()
        self.data = Collected()
        self.step = "Preconditions"
        self.abort_reason: str | None = None  # set by the manager before it cancels us
        self.plan: Plan | None = None
        self.annotated = False
        self.restored = False
        self.last_progress = 0.0

    # -- the run --------------------------------------------------------------------------------

    async def execute(self) -> str:
        """Run the test; returns the final phase."""
        self.timings.mark("started", self.env.now())
        await self._adopt()
        try:
            self.plan = await self._preconditions()
        except Refusal as refusal:
            await self._finish(REFUSED, refusal.reason, refusal.message)
            return REFUSED
        plan = self.plan
        await self._write(phase=RUNNING, step="Baseline", settings=plan.settings.document(),
                          workload={"kind": plan.ref.kind, "name": plan.ref.name,
                                    "replicas": plan.replicas},
                          message=f"testing {describe(plan.ref)}: {plan.settings.recordings} "
                                  f"recordings, {plan.settings.segments} segments during a "
                                  f"{plan.settings.outage_seconds} s outage")
        self.env.event(self.run, "Normal", "Started", self.status["message"])
        failure: Refusal | None = None
        try:
            try:
                async with asyncio.timeout(plan.settings.deadline_seconds):
                    await self._steps(plan)
            finally:
                await asyncio.shield(self._restore())
        except TimeoutError:
            failure = Failure("Timeout", f"the run exceeded its bound of "
                                         f"{plan.settings.deadline_seconds} s in step "
                                         f"{self.step}")
        except Refusal as exc:
            failure = exc
        except (KubeError, mongo.MongoError, ConfigError) as exc:
            failure = Failure("Error", f"step {self.step}: {exc}")
        except asyncio.CancelledError:
            reason = self.abort_reason or "OperatorStopping"
            if reason != "Deleted":
                await asyncio.shield(self._finish(ABORTED, reason, _abort_message(reason)))
            raise
        finally:
            await plan.probe.close()
            await plan.sampler.close()
        if failure is not None:
            await self._finish(FAILED, failure.reason, failure.message)
            return FAILED
        verdict = self.data.verdict
        assert verdict is not None
        await self._finish(verdict.result, verdict.reason, verdict.message)
        return verdict.result

    async def _steps(self, plan: Plan) -> None:
        env, ref = self.env, plan.ref
        self.data.baseline = await plan.probe.counts()
        sampler = asyncio.create_task(self._sample(plan.sampler))
        try:
            await self._write(step="ScalingDown")
            note = json.dumps({"run": self.name, "uid": self.run["metadata"].get("uid"),
                               "replicas": plan.replicas,
                               "at": env.now().isoformat(timespec="seconds")})
            await env.call(env.kube.annotate_workload, self.namespace, ref, ANNOTATION, note)
            self.annotated = True
            self.timings.mark("outageStart", env.now())
            await env.call(env.kube.scale, self.namespace, ref, 0)
            env.event(self.run, "Normal", "ScaledDown",
                      f"scaled {describe(ref)} from {plan.replicas} to 0 replicas")

            await self._write(step="ConfirmingOutage")
            if not await self._wait_reachable(plan.probe, False, UNREACHABLE_WAIT):
                raise Failure("OutageNotEffective",
                              f"Mongo still answered {UNREACHABLE_WAIT:.0f} s after "
                              f"{describe(ref)} was scaled to 0")
            self.timings.mark("unreachableConfirmed", env.now())

            await self._write(step="Writing", message=(
                f"Mongo is down; Job {writer_name(self.name)} writes "
                f"{plan.settings.recordings} recordings and {plan.settings.segments} segments"))
            await env.call(env.kube.create_job, writer_job(
                self.run, self.database, plan.spec, plan.settings, env.image))
            await self._wait_writer(plan.settings)
            self.timings.mark("writesDone", env.now())

            # The outage lasts outageSeconds from its confirmation, and at least until the
            # writes are done (they must all happen while Mongo is down).
            down_for = (env.now() - self.timings.marks["unreachableConfirmed"]).total_seconds()
            hold = plan.settings.outage_seconds - down_for
            await self._write(step="Holding", message=(
                f"writes done; holding the outage {max(hold, 0):.0f} s more"))
            if hold > 0:
                await asyncio.sleep(hold)

            await self._write(step="Restoring")
            await self._restore()
            await self._write(step="WaitingForMongo",
                              message=f"{describe(ref)} back to {plan.replicas} replicas")
            if not await self._wait_reachable(plan.probe, True, REACHABLE_WAIT):
                raise Failure("MongoNotBack", f"Mongo did not answer within "
                                              f"{REACHABLE_WAIT:.0f} s of restoring "
                                              f"{describe(ref)} to {plan.replicas} replicas")
            self.timings.mark("reachable", env.now())
            env.event(self.run, "Normal", "MongoBack", "Mongo answers again")

            await self._write(step="WaitingForRecovery", message="waiting for the reindex")
            await self._wait_reindexed(plan)
            await self._write(step="Verifying")
            await self._verify(plan)
        finally:
            sampler.cancel()

    # -- preconditions --------------------------------------------------------------------------

    async def _adopt(self) -> None:
        """The run is owned by its database (garbage-collected with it)."""
        try:
            body = await self.env.database_body(self.db_key)
        except KubeError:
            body = None
        if body is None:
            return
        owners = list(self.run["metadata"].get("ownerReferences") or [])
        refs = with_owner(owners, {"apiVersion": body.get("apiVersion", "smartid.io/v1alpha1"),
                                   "kind": body.get("kind", "SmartIDDatabase"),
                                   "metadata": body["metadata"]})
        if refs is None:
            return
        try:
            await self.env.call(self.env.kube.patch_custom, PLURAL, self.namespace, self.name,
                                {"metadata": {"ownerReferences": refs}})
        except KubeError as exc:
            log.warning("run %s/%s: could not set its owner: %s", self.namespace, self.name, exc)

    async def _preconditions(self) -> Plan:
        env, ns, db = self.env, self.namespace, self.database
        other = env.active_run(self.db_key, self.name)
        if other is not None:
            raise Refusal("RunActive", f"run {other} is still active for SmartIDDatabase "
                                       f"{db}: one outage test at a time")
        try:
            body = await env.database_body(self.db_key)
        except KubeError as exc:
            raise Refusal("CheckFailed", f"reading SmartIDDatabase {db} failed: {exc}") from None
        if body is None:
            raise Refusal("DatabaseNotFound",
                          f"SmartIDDatabase {ns}/{db} (spec.database) does not exist")
        try:
            spec = parse(body["spec"])
        except ConfigError as exc:
            raise Refusal(exc.reason, exc.message) from None
        if not spec.chaos.allow_disruption:
            raise Refusal("DisruptionNotAllowed",
                          f"SmartIDDatabase {db} has spec.chaos.allowDisruption false: set it "
                          f"to true to allow outage tests to scale {describe(spec.mongo.workload)}"
                          f" to 0")
        if not spec.recovery.enabled:
            raise Refusal("RecoveryDisabled",
                          f"SmartIDDatabase {db} has spec.recovery.enabled false: nothing would "
                          f"index the writes made during the outage")
        settings = resolve(self.run["spec"], spec.chaos)
        ref = spec.mongo.workload
        try:
            workload = await env.call(env.kube.workload, ns, ref)
            if workload is None:
                raise Refusal("WorkloadNotFound", f"{describe(ref)} (spec.mongo.workload of "
                                                  f"{db}) does not exist in {ns}")
            note = ((workload.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
            if note:
                raise Refusal("RestorePending",
                              f"{describe(ref)} still carries {ANNOTATION} ({note}): an "
                              f"earlier run's replicas are being restored")
            uri = await env.call(env.kube.secret_value, ns, spec.mongo.uri_secret)
            replicas = await env.call(env.kube.replicas, ns, ref)
        except ConfigError as exc:
            raise Refusal(exc.reason, exc.message) from None
        except KubeError as exc:
            raise Refusal("CheckFailed", f"checking the preconditions failed: {exc}") from None
        timeout = float(spec.mongo.connect_timeout_seconds)
        probe = env.probe(env.pool, f"{ns}/{db}/chaos", uri, spec.mongo.database, timeout)
        sampler = env.probe(env.pool, f"{ns}/{db}/chaos-sampler", uri, spec.mongo.database,
                            timeout)
        try:
            up, error = await probe.reachable()
            if not up:
                raise Refusal("MongoUnreachable",
                              f"MongoDB does not answer ({error}): an outage test starts only "
                              f"from a healthy database")
            if not replicas:
                raise Refusal("WorkloadScaledDown",
                              f"{describe(ref)} has 0 replicas although Mongo answers: the URI "
                              f"does not point at it, so scaling it would prove nothing")
            if any(await probe.tagged(self.name)):
                raise Refusal("IdsInUse",
                              f"Mongo already holds documents of a run named {self.name} (one "
                              f"of that name ran before): give this run another name")
        except mongo.MongoError as exc:
            await probe.close()
            await sampler.close()
            raise Refusal("MongoUnreachable", f"MongoDB failed a query: {exc}") from None
        except Refusal:
            await probe.close()
            await sampler.close()
            raise
        return Plan(spec, settings, ref, int(replicas), probe, sampler)

    # -- waits ----------------------------------------------------------------------------------

    async def _sample(self, probe: Probe) -> None:
        """Availability for the timeline, every ``env.sample`` seconds, until cancelled."""
        while True:
            up, _ = await probe.reachable()
            self.data.samples.append((self.env.now().timestamp(), up))
            await asyncio.sleep(self.env.sample)

    async def _wait_reachable(self, probe: Probe, want: bool, bound: float) -> bool:
        deadline = time.monotonic() + bound
        while True:
            up, _ = await probe.reachable()
            self.data.samples.append((self.env.now().timestamp(), up))
            if up == want:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.env.poll)

    async def _wait_writer(self, settings: Settings) -> None:
        name = writer_name(self.name)
        deadline = time.monotonic() + WRITER_START_WAIT + settings.writer_seconds
        while time.monotonic() < deadline:
            job = await self.env.call(self.env.kube.job, self.namespace, name)
            status = (job or {}).get("status") or {}
            if status.get("succeeded"):
                return
            failed = next((c for c in status.get("conditions") or []
                           if c.get("type") == "Failed" and c.get("status") == "True"), None)
            if job is None or status.get("failed") or failed:
                why = (failed or {}).get("message") or ("deleted" if job is None else "failed")
                raise Failure("WriterFailed", f"Job {name} did not write the run's data: {why}")
            await asyncio.sleep(self.env.poll * 2)
        raise Failure("WriterTimeout", f"Job {name} did not finish within "
                                       f"{WRITER_START_WAIT + settings.writer_seconds:.0f} s")

    async def _wait_reindexed(self, plan: Plan) -> None:
        """Until every written id is in Mongo (counted by the run's tag, then confirmed id by
        id), or the recovery timeout; either way the verification names what is missing."""
        settings = plan.settings
        want = (settings.recordings, settings.segments)
        deadline = time.monotonic() + settings.recovery_timeout_seconds
        while time.monotonic() < deadline:
            try:
                tagged = await plan.probe.tagged(self.name)
                if tagged[0] >= want[0] and tagged[1] >= want[1] and \
                        await self._all_present(plan):
                    self.timings.mark("fullyReindexed", self.env.now())
                    return
            except mongo.MongoError as exc:  # Mongo flapping: keep waiting within the bound
                log.info("run %s: polling the reindex failed: %s", self.name, exc)
                tagged = (0, 0)
            await self._progress(f"reindexed {tagged[0]} of {want[0]} recordings and "
                                 f"{tagged[1]} of {want[1]} segments")
            await asyncio.sleep(self.env.poll)

    async def _all_present(self, plan: Plan) -> bool:
        s = plan.settings
        rec = await plan.probe.present(RECORDINGS, recording_ids(self.name, s.recordings))
        seg = await plan.probe.present(SEGMENTS, segment_ids(self.name, s.recordings,
                                                             s.segments_per_recording))
        return len(rec) == s.recordings and len(seg) == s.segments

    async def _progress(self, message: str) -> None:
        """A progress line in status, at most every 2 s (one status write each)."""
        if time.monotonic() - self.last_progress >= 2.0:
            self.last_progress = time.monotonic()
            await self._write(message=message)

    # -- verdict --------------------------------------------------------------------------------

    async def _verify(self, plan: Plan) -> None:
        s, probe = plan.settings, plan.probe
        rec_ids = recording_ids(self.name, s.recordings)
        seg_ids = segment_ids(self.name, s.recordings, s.segments_per_recording)
        final = await probe.counts()
        tagged = await probe.tagged(self.name)
        rec = await probe.present(RECORDINGS, rec_ids)
        seg = await probe.present(SEGMENTS, seg_ids)
        self.data.found = (rec, seg)
        tallies = tuple(
            Tally(baseline=self.data.baseline[i], written=len(ids), present=len(found),
                  tagged=tagged[i], final=final[i],
                  by_writer=sum(1 for f in found.values() if f.indexed_by == "writer"),
                  lost_ids=tuple(i_ for i_ in ids if i_ not in found))
            for i, (ids, found) in enumerate(((rec_ids, rec), (seg_ids, seg))))
        self.data.tallies = (tallies[0], tallies[1])
        waited = (self.env.now() - self.timings.marks["reachable"]).total_seconds()
        self.data.verdict = judge(tallies[0], tallies[1],
                                  outage_seconds=self.timings.outage_seconds,
                                  recovery_seconds=self.timings.recovery_seconds,
                                  waited_seconds=waited)

    # -- restore and finish -----------------------------------------------------------------

    async def _restore(self) -> None:
        """Give the workload its recorded replicas back and drop the annotation; idempotent.
        Retried for a minute; if the API keeps failing, the annotation stays and the
        manager's sweep restores it later."""
        if self.restored or not self.annotated or self.plan is None:
            return
        env, ref, replicas = self.env, self.plan.ref, self.plan.replicas
        delay = 0.5
        for _ in range(12):
            try:
                await env.call(env.kube.scale, self.namespace, ref, replicas)
                await env.call(env.kube.annotate_workload, self.namespace, ref, ANNOTATION,
                               None)
            except KubeError as exc:
                if exc.status == 404:  # the workload is gone: nothing to give back
                    self.restored = True
                    return
                log.warning("run %s: restoring %s failed, retrying: %s", self.name,
                            describe(ref), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
                continue
            self.restored = True
            self.timings.mark("restored", env.now())
            env.event(self.run, "Normal", "Restored",
                      f"scaled {describe(ref)} back to {replicas} replicas")
            return
        env.event(self.run, "Warning", "RestoreFailed",
                  f"could not restore {describe(ref)} to {replicas} replicas; the operator "
                  f"retries from the {ANNOTATION} annotation")

    async def _finish(self, phase: str, reason: str, message: str) -> None:
        self.timings.mark("finished", self.env.now())
        fields: dict[str, Any] = {"phase": phase, "reason": reason, "message": message,
                                  "step": "Done"}
        tallies = self.data.tallies
        if tallies is not None and self.data.verdict is not None and phase == \
                self.data.verdict.result:
            fields.update(result_status(self.data.verdict, *tallies, self.timings))
        else:
            fields["timings"] = self.timings.document()
        self.status.update(fields)
        if phase != REFUSED:
            await self._report()
        await self._write()
        kind = "Normal" if phase == "Passed" else "Warning"
        self.env.event(self.run, kind, phase, message[:1000])
        verdict = Observation(OUTAGE_TEST_PASSED, phase == PASSED, reason, message) \
            if phase in (PASSED, FAILED) else None  # refusals and aborts prove nothing
        self.env.report(self.db_key, last_outage_test(self.name, self.status), verdict)
        log.info("run %s/%s: %s (%s) %s", self.namespace, self.name, phase, reason, message)

    async def _report(self) -> None:
        """report.json and timeline.png in the ConfigMap <run>-report (never fails the run)."""
        self.status["step"] = "Reporting"
        try:
            timeline = self._timeline()
            lost = [] if self.data.tallies is None else [
                *self.data.tallies[0].lost_ids, *self.data.tallies[1].lost_ids]
            recovered = next((c for c in self.env.database_status(self.db_key).get(
                "conditions") or [] if c.get("type") == "Recovered"), None)
            doc = reports.build(run=self.name, namespace=self.namespace,
                                database=self.database, status=self.status, lost_ids=lost,
                                series=timeline.series(),
                                extra={"recoveredCondition": recovered})
            png = await asyncio.to_thread(render, timeline)
            cm = report_config_map(self.run, self.database, reports.encode(doc), png)
            await self.env.call(self.env.kube.apply, cm)
            self.status["report"] = {"configMap": report_name(self.name),
                                     "keys": [REPORT_JSON, TIMELINE_PNG]}
        except Exception:  # a report is a courtesy: the verdict stands without it
            log.exception("run %s/%s: the report could not be made", self.namespace, self.name)
        finally:
            self.status["step"] = "Done"

    def _timeline(self) -> Timeline:
        rec, seg = self.data.found
        docs = [*rec.values(), *seg.values()]
        marks = {k: v.timestamp() for k, v in self.timings.marks.items()}
        origin = marks.get("outageStart", marks["started"])
        s = self.status
        title = (f"{self.name}: {s.get('phase', '?').upper()} - written {s.get('written', 0)}, "
                 f"reindexed {s.get('reindexed', 0)}, lost {s.get('lost', 0)}, duplicated "
                 f"{s.get('duplicated', 0)}")
        if s.get("recoverySeconds") is not None:
            title += f", recovery {s['recoverySeconds']:.1f} s"
        written = self.plan.settings if self.plan is not None else None
        return Timeline(
            title=title, passed=s.get("phase") == "Passed", origin=origin,
            mongo=availability(self.data.samples),
            written=cumulative(d.written_at.timestamp() for d in docs if d.written_at),
            indexed=cumulative(d.indexed_at.timestamp() for d in docs if d.indexed_at),
            total_written=(written.recordings + written.segments) if written else 0,
            marks=marks)

    async def _write(self, **fields: Any) -> None:
        """Server-side apply of the whole status this run has said so far."""
        if "step" in fields:
            self.step = fields["step"]
        self.status.update(fields)
        self.status["observedGeneration"] = self.run["metadata"].get("generation")
        if self.timings.marks:
            self.status["timings"] = {**(self.status.get("timings") or {}),
                                      **self.timings.document()}
        try:
            await self.env.call(self.env.kube.apply_custom_status, PLURAL, KIND,
                                self.namespace, self.name, self.status)
        except KubeError as exc:
            # Deleted meanwhile: the DELETED event cancels us; anything else: the next write
            # carries the whole status again.
            log.warning("run %s/%s: status write failed: %s", self.namespace, self.name, exc)


def _abort_message(reason: str) -> str:
    return {"AbortRequested": "aborted by spec.abort; Mongo's replicas were restored",
            "OperatorStopping": "the operator stopped during the run; Mongo's replicas were "
                                "restored"}.get(reason, f"aborted ({reason}); replicas restored")


# -- after a restart ------------------------------------------------------------------------

async def restore_from_annotation(env: Env, namespace: str, ref: WorkloadRef,
                                  run: str | None = None) -> dict[str, Any] | None:
    """Give ``ref`` the replicas its annotation records, then drop the annotation; only if
    the annotation names ``run`` (any run when None). Returns the annotation, or None."""
    workload = await env.call(env.kube.workload, namespace, ref)
    note = ((workload or {}).get("metadata") or {}).get("annotations", {}).get(ANNOTATION) \
        if workload else None
    if not note:
        return None
    try:
        data = json.loads(note)
        replicas = int(data["replicas"])
    except (ValueError, KeyError, TypeError):
        log.error("%s on %s/%s is not ours to read (%r): left alone", ANNOTATION, namespace,
                  describe(ref), note)
        return None
    if run is not None and data.get("run") != run:
        return None
    await env.call(env.kube.scale, namespace, ref, replicas)
    await env.call(env.kube.annotate_workload, namespace, ref, ANNOTATION, None)
    log.warning("restored %s/%s to %d replicas (left by run %s)", namespace, describe(ref),
                replicas, data.get("run"))
    return dict(data)


async def recover(env: Env, run: Body) -> None:
    """A run found Running with no task (the operator restarted mid-run): restore the
    replicas its annotation recorded and mark it Aborted."""
    meta = run["metadata"]
    namespace, name, database = meta["namespace"], meta["name"], run["spec"]["database"]
    status = dict(run.get("status") or {})
    body = await env.database_body((namespace, database))
    restored = "the workload carried no outage annotation (nothing to restore)"
    if body is not None:
        ref = parse(body["spec"]).mongo.workload
        note = await restore_from_annotation(env, namespace, ref, name)
        if note is not None:
            restored = f"{describe(ref)} restored to {note['replicas']} replicas"
    timings = Timings.from_document(status.get("timings") or {})
    timings.mark("finished", env.now())
    status.update(phase=ABORTED, reason="OperatorRestarted", step="Done",
                  message=f"the operator restarted during step {status.get('step', '?')}; "
                          f"{restored}", timings=timings.document())
    await env.call(env.kube.apply_custom_status, PLURAL, KIND, namespace, name, status)
    env.event(run, "Warning", ABORTED, status["message"])
    env.report((namespace, database), last_outage_test(name, status), None)
