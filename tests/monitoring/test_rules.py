"""The alerting rules: generated files current, ``promtool check rules`` and ``promtool test
rules`` (every alert with a case that fires and one that must not), and the kustomize
thresholds component setting every threshold. promtool is the one the test bed builds from
the Prometheus Go module (``smartid_testbed.binaries``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartid_operator.monitoring import render
from smartid_operator.monitoring.alerts import ALERTS, THRESHOLDS
from smartid_testbed import binaries

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/monitoring/smartid-alerts.rules.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts.test.yaml")


def _binary(name: str) -> Path:
    try:
        return binaries.find(name)
    except binaries.BuildError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} could not be built: {exc}")
        pytest.skip(f"{name} could not be built: {exc}")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return _binary("promtool")


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


def test_the_generated_files_are_current() -> None:
    assert render.stale(REPO) == [], "run: python -m smartid_operator.monitoring write"


def test_promtool_checks_the_plain_file_and_the_prometheusrule(promtool: Path,
                                                                tmp_path: Path) -> None:
    rule = yaml.safe_load((REPO / "deploy/components/monitoring/prometheusrule.yaml").read_text())
    spec = tmp_path / "from-prometheusrule.yaml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    proc = run(promtool, "check", "rules", RULES, spec)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = len(ALERTS) + sum(not t.is_duration for t in THRESHOLDS)
    assert proc.stdout.count(f"SUCCESS: {count} rules found") == 2, proc.stdout


def test_promtool_unit_tests_pass(promtool: Path) -> None:
    proc = run(promtool, "test", "rules", UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_must_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            expected = check.get("exp_alerts") or []
            (fires if expected else quiet).add(check["alertname"])
            # a case that fires names only some of its databases: the others must not fire
            named = {a["exp_labels"].get("name") for a in expected}
            series = {m.group(1) for s in case["input_series"]
                      if (m := re.search(r'name="([^"]+)"', s["series"]))}
            if expected and series - named:
                quiet.add(check["alertname"])
    names = {a.name for a in ALERTS}
    assert fires == names, f"no firing case: {names - fires}"
    assert quiet == names, f"no quiet case: {names - quiet}"


def test_every_alert_names_the_database_and_its_runbook() -> None:
    runbooks = (REPO / "docs/runbooks.md").read_text()
    for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]:
        if "alert" not in rule:
            continue
        annotations = rule["annotations"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        anchor = annotations["runbook_url"].rsplit("#", 1)[1]
        assert f"## {rule['alert']}" in runbooks and anchor == rule["alert"].lower()
        if rule["alert"] != "SmartIDOperatorDown":  # the one alert about every database
            for text in (annotations["summary"], annotations["description"]):
                assert "{{ $labels.namespace }}/{{ $labels.name }}" in text, rule["alert"]


def _kustomize(tmp_path: Path, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    proc = run(_binary("kubectl"), "kustomize", tmp_path)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_thresholds_component_sets_every_threshold_from_the_overlays_configmap(
        tmp_path: Path) -> None:
    components = os.path.relpath(REPO / "deploy/components", tmp_path)
    example = yaml.safe_load(
        (REPO / "deploy/components/monitoring-thresholds/thresholds.example.yaml").read_text())
    changed = {t.name: ("7m" if t.is_duration else "4242") for t in THRESHOLDS}
    example["data"] = {**changed, "runbookBaseUrl": "https://wiki.example/runbooks"}
    (tmp_path / "thresholds.yaml").write_text(yaml.safe_dump(example))
    docs = _kustomize(tmp_path, {
        "namespace": "monitoring", "resources": ["thresholds.yaml"],
        "components": [f"{components}/monitoring", f"{components}/monitoring-thresholds"]})
    assert sorted(d["kind"] for d in docs) == ["PodMonitor", "PodMonitor", "PrometheusRule"]
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == render.prometheus_rule(
        render.rules(changed, base="https://wiki.example/runbooks"))["spec"]

    # Without the thresholds component, the defaults, as in the plain rules file.
    docs = _kustomize(tmp_path, {"resources": [], "components": [f"{components}/monitoring"]})
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_the_helm_template_is_the_prometheusrule_with_values_in_place() -> None:
    """Helm's own rendering is checked below; this checks the escaping the generator does:
    with the defaults substituted, the template is the kustomize PrometheusRule."""
    text = render.helm_templates()["prometheusrule.yaml"]
    assert text.splitlines()[1] == "{{- if .Values.monitoring.rules.enabled }}"
    text = "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith(("{{-", "{{/*")))
    text = re.sub(r'\{\{ \.Values\.monitoring\.rules\.\w+(?:\.\w+)? \| default ("[^"]*")'
                  r"(?: \| quote)? \}\}", lambda m: m.group(1), text)
    text = re.sub(r'"(https://[^"]*)"#', r"\1#", text)
    text = re.sub(r"\{\{`(.*?)`\}\}", r"\1", text)
    assert ".Values" not in text
    rule = yaml.safe_load(text.replace("{{ .Release.Namespace }}", "ns"))
    assert rule["spec"] == render.prometheus_rule(render.rules())["spec"]


def test_helm_renders_the_templates_as_the_component_with_values_in_place() -> None:
    """The chart with monitoring on: the component's objects, a threshold overridden."""
    chart = REPO / "charts/smartid-operator"
    helm = _binary("helm")
    off = run(helm, "template", "r", chart, "--namespace", "mon")
    assert off.returncode == 0, off.stderr
    assert "PrometheusRule" not in off.stdout and "PodMonitor" not in off.stdout
    on = run(helm, "template", "r", chart, "--namespace", "mon",
             "--set", "monitoring.rules.enabled=true",
             "--set", "monitoring.podMonitors.enabled=true",
             "--set", "monitoring.rules.thresholds.backupMaxAgeSeconds=172800",
             "--set", "monitoring.rules.thresholds.mongoUnreachableFor=30s",
             "--set", "commonLabels.release=kps")
    assert on.returncode == 0, on.stderr
    docs = [d for d in yaml.safe_load_all(on.stdout) if d]
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["namespace"] == "mon"
    assert rule["spec"] == render.prometheus_rule(render.rules(
        {"backupMaxAgeSeconds": "172800", "mongoUnreachableFor": "30s"}))["spec"]
    assert [d["spec"] for d in docs if d["kind"] == "PodMonitor"] == \
        [m["spec"] for m in render.pod_monitors()]
    typo = run(helm, "template", "r", chart, "--set", "monitoring.rules.thresholds.mongoFor=1m")
    assert typo.returncode != 0 and "mongoFor" in typo.stderr, typo.stderr


def test_the_charts_values_and_schema_carry_the_monitoring_block() -> None:
    chart = REPO / "charts/smartid-operator"
    assert yaml.safe_load((chart / "values.yaml").read_text())["monitoring"] == \
        render.helm_values()
    schema = json.loads((chart / "values.schema.json").read_text())
    assert schema["properties"]["monitoring"] == render.helm_values_schema()
