"""The Helm chart rendered by Helm v4 (built from its Go module): it lints strictly, its
schema refuses bad values by name, it renders the same objects as the kustomize install for
the same settings (only Helm's own labels differ), and the API server accepts what it renders
in a strict server-side dry run. Installing it for real: tests/cluster/test_helm.py."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartid_testbed import binaries
from smartid_testbed.testbed import TestBed
from tests.cluster.helm import CHART, HELM_LABELS, ROOT, Helm, HelmError, built_helm

Key = tuple[str, str, str]
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return built_helm(tmp_path_factory.mktemp("helm"))


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` (kustomize as built into the pinned kubectl; no API server)."""
    proc = subprocess.run([str(binaries.find("kubectl")), "kustomize", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_key(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
             for d in docs}
    assert len(keyed) == len(docs), "two objects of one kind and name"
    return keyed


def without_helm_labels(doc: dict[str, Any]) -> dict[str, Any]:
    """The object less Helm's own labels, after checking they are there and say what Helm
    says (CRDs come from crds/ as they are, without them)."""
    doc = copy.deepcopy(doc)
    labels = doc["metadata"].get("labels", {})
    if doc["kind"] != "CustomResourceDefinition":
        assert labels["app.kubernetes.io/managed-by"] == "Helm", doc["metadata"]
        assert labels["app.kubernetes.io/instance"] == "smartid-operator", doc["metadata"]
        assert labels["helm.sh/chart"].startswith("smartid-operator-"), doc["metadata"]
    for label in HELM_LABELS:
        labels.pop(label, None)
    if not labels:  # an object that had Helm's labels only
        doc["metadata"].pop("labels", None)
    return doc


def assert_same_objects(chart: list[dict[str, Any]], kustomized: list[dict[str, Any]]) -> None:
    # The kustomize overlays create their namespace; the chart installs into the release
    # namespace and creates none (`helm install --create-namespace` does): a namespace
    # that `helm uninstall` deleted would take the databases, their data and backups with it.
    kustomized = [d for d in kustomized if d["kind"] != "Namespace"]
    ours = by_key([without_helm_labels(d) for d in chart])
    theirs = by_key(kustomized)
    assert sorted(ours) == sorted(theirs)
    for key, doc in theirs.items():
        assert ours[key] == doc, f"{key} differs:\nchart:\n{yaml.safe_dump(ours[key])}\n" \
                                 f"kustomize:\n{yaml.safe_dump(doc)}"


def test_the_chart_lints_strictly(helm: Helm) -> None:
    for scope in ("namespaced", "cluster-wide"):
        out = helm("lint", "--strict", str(CHART), "--set", f"scope={scope}")
        assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_namespaced_defaults_render_what_kustomize_renders(helm: Helm) -> None:
    kustomized = kustomize(ROOT / "deploy/overlays/namespaced")
    chart = helm.template(namespace="smartid")
    assert_same_objects(chart, kustomized)
    assert {d["kind"] for d in chart} == {"CustomResourceDefinition", "ServiceAccount", "Role",
                                          "RoleBinding", "Deployment"}


def test_cluster_wide_renders_what_kustomize_renders(helm: Helm) -> None:
    kustomized = kustomize(ROOT / "deploy/overlays/cluster-wide")
    chart = helm.template("--set", "scope=cluster-wide", namespace="smartid-system")
    assert_same_objects(chart, kustomized)
    assert "ClusterRole" in {d["kind"] for d in chart}


def test_the_comparison_sees_a_changed_rule(helm: Helm) -> None:
    """The comparison above on a chart whose Role lost one verb: it fails."""
    kustomized = kustomize(ROOT / "deploy/overlays/namespaced")
    chart = helm.template(namespace="smartid")
    role = next(d for d in chart if d["kind"] == "Role")
    role["rules"][0]["verbs"].remove("watch")
    with pytest.raises(AssertionError, match="Role"):
        assert_same_objects(chart, kustomized)


SETTINGS = {  # helm --set-json values; the same settings as a kustomize overlay below
    "image": {"repository": "registry.example.com/smartid/smartid-operator", "tag": "1.2.3",
              "digest": "", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-login"}],
    "healthInterval": 5,
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "smartid",
                     "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "priorityClassName": "system-cluster-critical",
    "podSecurityContext": {"fsGroup": 65532},
    "commonLabels": {"team": "recordings"},
    "commonAnnotations": {"owner": "smartid@example.com"},
    "podLabels": {"tier": "operator"},
    "podAnnotations": {"example.com/scrape": "yes"},
}


def settings_overlay(tmp: Path) -> Path:
    """The SETTINGS as a user of kustomize would write them on deploy/overlays/namespaced."""
    pod = "/spec/template/spec"
    ops = [
        {"op": "add", "path": f"{pod}/containers/0/args/-", "value": "--health-interval=5"},
        {"op": "replace", "path": f"{pod}/containers/0/imagePullPolicy", "value": "Always"},
        {"op": "replace", "path": f"{pod}/containers/0/resources",
         "value": SETTINGS["resources"]},
        {"op": "add", "path": f"{pod}/imagePullSecrets", "value": SETTINGS["imagePullSecrets"]},
        {"op": "add", "path": f"{pod}/nodeSelector", "value": SETTINGS["nodeSelector"]},
        {"op": "add", "path": f"{pod}/tolerations", "value": SETTINGS["tolerations"]},
        {"op": "add", "path": f"{pod}/affinity", "value": SETTINGS["affinity"]},
        {"op": "add", "path": f"{pod}/priorityClassName", "value": SETTINGS["priorityClassName"]},
        {"op": "add", "path": f"{pod}/securityContext/fsGroup", "value": 65532},
        {"op": "add", "path": "/spec/template/metadata/labels/tier", "value": "operator"},
        {"op": "add", "path": "/spec/template/metadata/annotations/example.com~1scrape",
         "value": "yes"},
    ]
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy/overlays/namespaced", tmp)],
        "images": [{"name": "smartid-operator",
                    "newName": SETTINGS["image"]["repository"], "newTag": "1.2.3"}],
        "labels": [{"pairs": SETTINGS["commonLabels"], "includeSelectors": False}],
        "commonAnnotations": SETTINGS["commonAnnotations"],
        "patches": [{"target": {"kind": "Deployment", "name": "smartid-operator"},
                     "patch": yaml.safe_dump(ops)}],
    }))
    return tmp


def set_json(values: dict[str, Any]) -> list[str]:
    args = []
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def test_the_same_settings_render_the_same_objects(helm: Helm) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kustomized = kustomize(settings_overlay(Path(tmp)))
    # kustomize's commonAnnotations reach the CRDs too; crds/ is installed as it is.
    for doc in kustomized:
        if doc["kind"] == "CustomResourceDefinition":
            del doc["metadata"]["annotations"]
            del doc["metadata"]["labels"]["team"]
    chart = helm.template(*set_json(SETTINGS), namespace="smartid")
    assert_same_objects(chart, kustomized)
    deployment = next(d for d in chart if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/smartid/smartid-operator:1.2.3"
    assert "--health-interval=5" in container["args"]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_digest_and_tag(helm: Helm) -> None:
    image = operator_container(helm.template("--set", f"image.digest={DIGEST}"))["image"]
    assert image == f"smartid-operator:0.1.0@{DIGEST}"
    image = operator_container(helm.template(
        "--set", f"image.digest={DIGEST}", "--set", "image.tag=2.0.0"))["image"]
    assert image == f"smartid-operator:2.0.0@{DIGEST}"


def test_watched_namespaces_get_a_role_each_and_the_operator_its_image(helm: Helm) -> None:
    docs = helm.template("--set-json", 'watchNamespaces=["team-a","team-b"]',
                         namespace="smartid")
    roles = sorted((d["kind"], d["metadata"]["namespace"]) for d in docs
                   if d["kind"] in ("Role", "RoleBinding"))
    assert roles == [("Role", "team-a"), ("Role", "team-b"),
                     ("RoleBinding", "team-a"), ("RoleBinding", "team-b")]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "smartid-operator",
                                    "namespace": "smartid"}]
    args = operator_container(docs)["args"]
    assert [a for a in args if a.startswith(("--namespace", "--agent-image"))] == [
        "--namespace=team-a", "--namespace=team-b", "--agent-image=smartid-operator:0.1.0"]


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "scope=global"], "/scope"),
    (["--set", "imag.tag=1"], "'imag' not allowed"),
    (["--set", "image.digest=abc"], "/image/digest"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["--set", "healthInterval=0"], "/healthInterval"),
    (["--set", "metrics.port=70000"], "/metrics/port"),
    (["--set", "liveness.port=8080"], "metrics.port and liveness.port must differ"),
    (["--set", "podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
    (["--set", "podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser"),
    (["--set", "podSecurityContext.seccompProfile.type=Unconfined"],
     "/podSecurityContext/seccompProfile/type"),
    (["--set", "securityContext.allowPrivilegeEscalation=true"],
     "/securityContext/allowPrivilegeEscalation"),
    (["--set", "securityContext.readOnlyRootFilesystem=false"],
     "/securityContext/readOnlyRootFilesystem"),
    (["--set", "securityContext.privileged=true"], "/securityContext/privileged"),
    (["--set-json", 'securityContext.capabilities.add=["NET_ADMIN"]'],
     "/securityContext/capabilities/add"),
    (["--set-json", 'securityContext.capabilities.drop=["NET_RAW"]'],
     "/securityContext/capabilities/drop"),
    (["--set", "scope=cluster-wide", "--set-json", 'watchNamespaces=["a"]'],
     "/watchNamespaces"),
    (["--set-json", 'watchNamespaces=["Team_A"]'], "/watchNamespaces/0"),
    (["--set-json", 'podLabels={"app.kubernetes.io/name":"x"}'], "/podLabels"),
    (["--set", "monitoring.rules.thresholds=5"], "/monitoring/rules/thresholds"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_values_are_refused_by_name(helm: Helm, args: list[str], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(*args)
    assert message in str(refused.value), str(refused.value)


def strict_dry_run(bed: TestBed, docs: list[dict[str, Any]]) -> str:
    # --force-conflicts: the cluster-scoped objects may exist already, from the kustomize
    # install other tests of the session made (another namespace in the binding's subject);
    # a dry run changes nothing, and what is checked here is the objects, not who owns them.
    return bed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                       "--force-conflicts", "--field-manager=smartid-chart-test", "-f", "-",
                       input=yaml.safe_dump_all(docs))


@pytest.mark.parametrize("values", [[], ["--set", "scope=cluster-wide"], set_json(SETTINGS)],
                         ids=["namespaced", "cluster-wide", "settings"])
def test_the_api_server_accepts_what_the_chart_renders(
        helm: Helm, testbed: TestBed, values: list[str]) -> None:
    namespace = "smartid-chart-render"
    testbed.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    docs = helm.template(*values, namespace=namespace)
    out = strict_dry_run(testbed, docs)
    assert out.count("serverside-applied (server dry run)") == len(docs), out


def test_the_dry_run_refuses_a_misspelt_field(helm: Helm, testbed: TestBed) -> None:
    """The same check fails on a field the API does not know, so the passes mean something."""
    docs = helm.template(namespace="smartid-chart-render")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["nodeSelectr"] = {}
    with pytest.raises(RuntimeError, match="nodeSelectr"):
        strict_dry_run(testbed, docs)
