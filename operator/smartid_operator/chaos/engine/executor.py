"""One outage test, start to end: one asyncio task in the operator, the run's only writer.

Steps (``status.step``): Preconditions, Baseline, ScalingDown, ConfirmingOutage, Writing,
Holding, Restoring, WaitingForMongo, WaitingForRecovery, Verifying, Reporting, Done.

Safety: the workload's replicas are written into its annotation before it is touched, and
every way out of the outage (success, failure, timeout, abort, operator shutdown) goes through
``_restore`` in a ``finally``; a SIGKILLed operator leaves the annotation, which the next one
reads (``recover.recover``). Only the workload the database's spec names is ever touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from smartid_operator import clock, mongo
from smartid_operator.chaos import ANNOTATION, KIND, PLURAL
from smartid_operator.chaos.children import (
    REPORT_JSON,
    TIMELINE_PNG,
    report_config_map,
    report_name,
    writer_job,
    writer_name,
)
from smartid_operator.chaos.engine import report as reports
from smartid_operator.chaos.engine.env import (
    OUTAGE_TEST_PASSED,
    Body,
    Env,
    Failure,
    Key,
    Refusal,
    describe,
)
from smartid_operator.chaos.engine.model import (
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
    result_status,
    segment_ids,
)
from smartid_operator.chaos.engine.preconditions import Plan, adopt, check
from smartid_operator.chaos.engine.probe import RECORDINGS, SEGMENTS, Found, Probe
from smartid_operator.chaos.engine.timeline import Timeline, availability, cumulative, render
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.spec import parse_outage_test
from smartid_operator.status import Observation

log = logging.getLogger(__name__)


@dataclass
class Collected:
    baseline: tuple[int, int] = (0, 0)
    samples: list[tuple[float, bool]] = field(default_factory=list)
    found: tuple[dict[str, Found], dict[str, Found]] = ({}, {})
    tallies: tuple[Tally, Tally] | None = None
    verdict: Verdict | None = None


class Execution:
    def __init__(self, env: Env, run: Body) -> None:
        meta = run["metadata"]
        self.env = env
        self.run = run
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.database = parse_outage_test(run["spec"]).database
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
        await adopt(self.env, self.run)
        try:
            self.plan = await check(self.env, self.run)
        except Refusal as refusal:
            await self.refuse(refusal)
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

    async def refuse(self, refusal: Refusal) -> None:
        """End the run before it touched anything."""
        await self._finish(REFUSED, refusal.reason, refusal.message)

    async def _steps(self, plan: Plan) -> None:
        env, ref = self.env, plan.ref
        self.data.baseline = await plan.probe.counts()
        # Mongo just answered the counts: the timeline starts "up" whenever the sampler's
        # first probe lands.
        self.data.samples.append((env.now().timestamp(), True))
        sampler = asyncio.create_task(self._sample(plan.sampler))
        try:
            await self._write(step="ScalingDown")
            note = json.dumps({"run": self.name, "uid": self.run["metadata"].get("uid"),
                               "replicas": plan.replicas,
                               "at": clock.iso(env.now())})
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
            done = "fullyReindexed" in self.timings.marks
            await self._write(step="Verifying", message=(
                "every written id is back; checking counts and duplicates" if done else
                f"recovery timeout ({plan.settings.recovery_timeout_seconds} s): naming what "
                f"is missing"))
            await self._verify(plan)
        finally:
            sampler.cancel()

    # -- preconditions --------------------------------------------------------------------------

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
                seen = self.env.now()  # when the count said so, before the id check
                if tagged[0] >= want[0] and tagged[1] >= want[1] and \
                        await self._all_present(plan):
                    self.timings.mark("fullyReindexed", seen)
                    return
            except mongo.MongoError as exc:  # Mongo flapping: keep waiting within the bound
                log.info("run %s: polling the reindex failed: %s", self.name, exc)
                tagged = (0, 0)
            await self._progress(f"reindexed {tagged[0]} of {want[0]} recordings and "
                                 f"{tagged[1]} of {want[1]} segments")
            await asyncio.sleep(self.env.poll)

    async def _all_present(self, plan: Plan) -> bool:
        """Every expected id, looked up by id; what was found is kept for the verdict."""
        s = plan.settings
        rec = await plan.probe.present(RECORDINGS, recording_ids(self.name, s.recordings))
        seg = await plan.probe.present(SEGMENTS, segment_ids(self.name, s.recordings,
                                                             s.segments_per_recording))
        self.data.found = (rec, seg)
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
        if "fullyReindexed" not in self.timings.marks:  # timed out: look once more, by id
            await self._all_present(plan)
        rec, seg = self.data.found  # documents are immutable: found once, present for good
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
        title = (f"{s.get('phase', '?').upper()}: {self.name}\nwritten {s.get('written', 0)}, "
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


