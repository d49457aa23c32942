"""tests/kind/deploy.sh against stand-ins for kind and kubectl that record every call: the
order (CRD, Established, operator, samples, Mongo), the image override, and that the user's
current context is never switched. Runs everywhere; no Docker needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests/kind/deploy.sh"
CONTEXT = "kind-smartid-e2e"

# Each stand-in appends "<tool> <args>" to $LOG. kubectl keeps a current context in $STATE
# (as a kubeconfig would) and copies the kustomization it is asked to apply; `kind create
# cluster` makes its cluster current, as kind does.
KIND = r"""#!/usr/bin/env bash
echo "kind $*" >>"$LOG"
case "$1 $2" in
  "get clusters") [ -n "$EXISTING" ] && echo "$EXISTING"; exit 0 ;;
  "create cluster") echo "kind-$4" >"$STATE" ;;
esac
"""
KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >>"$LOG"
CRDS=(customresourcedefinition.apiextensions.k8s.io/smartiddatabases.smartid.io
      customresourcedefinition.apiextensions.k8s.io/smartidoutagetests.smartid.io)
case "$1 $2" in
  "config current-context") [ -s "$STATE" ] && cat "$STATE" && exit 0; exit 1 ;;
  "config use-context") echo "$3" >"$STATE" ;;
  "config unset") : >"$STATE" ;;
esac
case "$3 $4 $5 $6" in
  "apply --server-side -k crds/") printf '%s\n' "${CRDS[@]}" ;;
  get\ customresourcedefinition*) echo -n True ;;
esac
for arg; do
  if [ "$prev" = -k ] && [[ "$arg" == /* ]]; then  # the generated overlay (a temp folder)
    cp "$arg/kustomization.yaml" "$KUSTOMIZATION"
    echo "base resolves to $(cd "$arg" && cd "$(sed -n 's/^resources: \[\(.*\)\]$/\1/p' \
      kustomization.yaml)" && pwd)" >>"$LOG"
  fi
  prev=$arg
done
exit 0
"""


def run(tmp_path: Path, *, image: str, existing: str = "",
        current: str = "my-cluster") -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("kind", KIND), ("kubectl", KUBECTL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log, state = tmp_path / "log", tmp_path / "state"
    log.write_text("")
    state.write_text(current)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "STATE": str(state), "EXISTING": existing,
           "KUSTOMIZATION": str(tmp_path / "kustomization.yaml"),
           "KIND_CLUSTER": "smartid-e2e", "IMAGE": image}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    return proc, log.read_text().splitlines(), state


def index(calls: list[str], fragment: str) -> int:
    return next(i for i, call in enumerate(calls) if fragment in call)


def test_new_cluster_in_order_with_this_build_and_the_users_context_kept(
        tmp_path: Path) -> None:
    proc, calls, state = run(tmp_path, image="registry.local:5000/smartid-operator:dev-42")
    assert proc.returncode == 0, proc.stderr
    assert "kind create cluster --name smartid-e2e --wait 120s" in calls
    assert state.read_text().strip() == "my-cluster"  # given back after kind took it

    cluster_calls = [c for c in calls if c.startswith("kubectl ") and " config " not in c]
    assert cluster_calls and all(c.startswith(f"kubectl --context {CONTEXT} ")
                                 for c in cluster_calls), cluster_calls
    order = [index(calls, "kind load docker-image registry.local:5000/smartid-operator:dev-42"),
             index(calls, "apply --server-side -k crds/ -o name"),
             index(calls, "get customresourcedefinition.apiextensions.k8s.io/smartiddatabases"),
             index(calls, "get customresourcedefinition.apiextensions.k8s.io/smartidoutagetests"),
             index(calls, "base resolves to"),
             index(calls, "rollout status deployment/smartid-operator"),
             index(calls, "apply --server-side -k deploy/samples"),
             index(calls, "rollout status statefulset/mongo")]
    assert order == sorted(order), calls

    assert f"base resolves to {ROOT / 'deploy'}" in calls
    overlay = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert overlay["images"] == [{"name": "smartid-operator",
                                  "newName": "registry.local:5000/smartid-operator",
                                  "newTag": "dev-42"}]


def test_existing_cluster_is_reused_and_no_context_is_touched(tmp_path: Path) -> None:
    proc, calls, state = run(tmp_path, image="smartid-operator:dev-1", existing="smartid-e2e")
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c.startswith("kind create") or " config " in c]
    assert state.read_text().strip() == "my-cluster"


def test_no_current_context_stays_none(tmp_path: Path) -> None:
    proc, _, state = run(tmp_path, image="smartid-operator:dev-1", current="")
    assert proc.returncode == 0, proc.stderr
    assert state.read_text().strip() == ""


@pytest.mark.parametrize("image", ["smartid-operator", "registry.local:5000/smartid-operator"])
def test_an_image_without_tag_is_refused(tmp_path: Path, image: str) -> None:
    proc, calls, _ = run(tmp_path, image=image)
    assert proc.returncode == 2 and "must carry a tag" in proc.stderr
    assert calls == []
