"""The Grafana dashboard's shape, as Grafana's importer needs it (its queries run against a
real Prometheus in tests/cluster/test_alerts.py)."""

from __future__ import annotations

import json
from pathlib import Path

from smartid_operator.monitoring import dashboard

REPO = Path(__file__).resolve().parents[2]


def test_the_dashboard_file_is_importable_json_with_unique_ids_on_the_grid() -> None:
    board = json.loads((REPO / "deploy/monitoring/smartid-dashboard.json").read_text())
    assert board["uid"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"namespace", "name"} <= set(variables)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_per_database_query_follows_the_variables() -> None:
    for _, items in dashboard.ROWS:
        for title, _, _, targets, _ in items:
            for _, expr in targets:
                if title != "Reconcile latency":  # the histogram has no database label
                    assert 'namespace=~"$namespace", name=~"$name"' in expr, title
