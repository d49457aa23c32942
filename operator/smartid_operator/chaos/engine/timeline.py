"""The run's timeline: series built from the operator's own probes and the documents' own
timestamps (``written_at`` by the writer, ``indexed_at`` by whoever indexed them), and the
picture a person reads at a glance (matplotlib, rendered off-screen)."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]
MAX_POINTS = 300  # per series in the report: the picture's resolution, not the data's size

MARK_LABELS = {
    "outageStart": "scaled to 0",
    "unreachableConfirmed": "Mongo down",
    "writesDone": "writes done",
    "restored": "replicas restored",
    "reachable": "Mongo answers",
    "fullyReindexed": "all reindexed",
}


def availability(samples: Iterable[tuple[float, bool]]) -> list[Point]:
    """Probe samples as a step series: the first sample, each change, and the last."""
    ordered = sorted(samples)
    points: list[Point] = []
    for i, (t, up) in enumerate(ordered):
        value = 1.0 if up else 0.0
        if not points or points[-1][1] != value or i == len(ordered) - 1:
            points.append((t, value))
    return points


def cumulative(times: Iterable[float], max_points: int = MAX_POINTS) -> list[Point]:
    """How many events happened by each time, as a step series of at most ``max_points``
    (every step kept when there are few, evenly spaced ranks otherwise, the last one always)."""
    ordered = sorted(times)
    if not ordered:
        return []
    n = len(ordered)
    ranks: list[int] | range
    if n <= max_points:
        ranks = range(n)
    else:
        step = (n - 1) / (max_points - 1)
        ranks = sorted({round(i * step) for i in range(max_points)})
    return [(ordered[r], float(r + 1)) for r in ranks]


def relative(points: Sequence[Point], origin: float) -> list[Point]:
    return [(round(t - origin, 3), v) for t, v in points]


@dataclass
class Timeline:
    """Everything the picture shows, in seconds since ``origin`` (the scale-down)."""

    title: str
    passed: bool
    origin: float
    mongo: list[Point] = field(default_factory=list)
    written: list[Point] = field(default_factory=list)
    indexed: list[Point] = field(default_factory=list)
    total_written: int = 0
    marks: dict[str, float] = field(default_factory=dict)  # absolute epoch seconds

    def series(self) -> dict[str, list[list[float]]]:
        """The report's ``series``: seconds since the scale-down, value."""
        return {name: [[t, v] for t, v in relative(points, self.origin)]
                for name, points in (("mongoAvailable", self.mongo),
                                     ("written", self.written), ("reindexed", self.indexed))}


def render(timeline: Timeline) -> bytes:
    """The PNG: Mongo's availability on top, writes and reindexed documents below, with the
    run's moments marked; the verdict and the numbers in the title."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    fig.suptitle(timeline.title, fontsize=12, fontweight="bold",
                 color="#1b7f3b" if timeline.passed else "#b3261e")
    rel = {k: v - timeline.origin for k, v in timeline.marks.items()}
    ends = [t for t, _ in (*timeline.mongo, *timeline.written, *timeline.indexed)]
    end = max([*(t - timeline.origin for t in ends), *rel.values(), 1.0])
    start = min([*(t - timeline.origin for t in ends), *rel.values(), 0.0])

    down = _down_spans(relative(timeline.mongo, timeline.origin), end)
    for axis in (top, bottom):
        for a, b in down:
            axis.axvspan(a, b, color="#f4c7c3", alpha=0.6, lw=0)
    mongo = relative(timeline.mongo, timeline.origin)
    if mongo:
        xs = [t for t, _ in mongo] + [end]
        ys = [v for _, v in mongo] + [mongo[-1][1]]
        top.fill_between(xs, ys, step="post", color="#34a853", alpha=0.8, lw=0)
    top.set_ylim(0, 1.05)
    top.set_yticks([0, 1], ["down", "up"])
    top.set_ylabel("Mongo")
    top.set_title("availability (the operator's probes; red: Mongo not answering)",
                  fontsize=9, loc="left")

    for points, label, color in ((timeline.written, "written to storage", "#1a73e8"),
                                 (timeline.indexed, "indexed in Mongo", "#188038")):
        series = relative(points, timeline.origin)
        if series:
            xs = [start] + [t for t, _ in series] + [end]
            ys = [0.0] + [v for _, v in series] + [series[-1][1]]
            bottom.step(xs, ys, where="post", label=f"{label} ({int(series[-1][1])})",
                        color=color, lw=2)
    if timeline.total_written:
        bottom.axhline(timeline.total_written, color="#5f6368", ls=":", lw=1,
                       label=f"written by the test ({timeline.total_written})")
    top_y = max(timeline.total_written, 1)
    marked = sorted((rel[k], label) for k, label in MARK_LABELS.items() if k in rel)
    span = max(end - start, 1e-9)
    for i, (at, label) in enumerate(marked):
        # Three label heights in turn, so moments a second apart stay readable; labels near
        # an edge grow inwards, never over the axis.
        where = (at - start) / span
        align = "left" if where < 0.15 else "right" if where > 0.85 else "center"
        bottom.axvline(at, color="#5f6368", ls="--", lw=0.8)
        bottom.annotate(f"{label} {at:.1f} s", (at, top_y * (1.04 + 0.09 * (i % 3))),
                        fontsize=8, ha=align, va="bottom", color="#202124",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                              "alpha": 0.85})
    bottom.set_ylim(0, top_y * 1.35)
    bottom.set_xlim(start, end + max(1.0, 0.02 * (end - start)))
    bottom.set_xlabel("seconds since the Mongo workload was scaled to 0")
    bottom.set_ylabel("documents (recordings + segments)")
    bottom.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=9)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _down_spans(mongo: Sequence[Point], end: float) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    since: float | None = None
    for t, v in mongo:
        if v == 0.0 and since is None:
            since = t
        elif v == 1.0 and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, end))
    return spans

