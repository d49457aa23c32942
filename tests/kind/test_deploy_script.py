"""tests/kind/deploy.sh against stand-ins for kind and kubectl that record every call: the
order (CRD, Established, operator, samples, Mongo), the image override, and that the user's
current context is never switched. Runs everywhere; no Docker needed. The temporary folder is
reached through a symlink one level shallower than its target, as on macOS (/var ->
/private/var), and the kubectl stand-in resolves the overlay as kustomize does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests/kind/deploy.sh"
CONTEXT = "kind-smartid-e2e"

# Each stand-in appends "<tool> <args>" to $LOG. kubectl keeps a current context in $STATE and
# the known contexts in $CONTEXTS (as a kubeconfig would) and copies the kustomization it is
# asked to apply; `kind create cluster` and `kind export kubeconfig` add their cluster's context
# and make it current, as kind does.
KIND = r"""#!/usr/bin/env bash
echo "kind $*" >>"$LOG"
case "$1 $2" in
  "get clusters") [ -n "$EXISTING" ] && echo "$EXISTING"; exit 0 ;;
  "create cluster"|"export kubeconfig") echo "kind-$4" >"$STATE"; echo "kind-$4" >>"$CONTEXTS" ;;
esac
"""
# The overlay is read the way kustomize reads it: from its real path (kyaml's CleanedAbs
# evaluates symlinks), the relative base followed from there.
KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >>"$LOG"
CRDS=(customresourcedefinition.apiextensions.k8s.io/smartiddatabases.smartid.io
      customresourcedefinition.apiextensions.k8s.io/smartidoutagetests.smartid.io)
case "$1 $2" in
  "config current-context") [ -s "$STATE" ] && cat "$STATE" && exit 0; exit 1 ;;
  "config get-contexts") cat "$CONTEXTS"; exit 0 ;;
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
    base=$(sed -n 's/^resources: \[\(.*\)\]$/\1/p' "$arg/kustomization.yaml")
    real=$(cd -P "$arg" && pwd -P)
    resolved=$(cd -P "$real" && cd -P "$base" 2>/dev/null && pwd -P) || {
      echo "error: evalsymlink failure on '$real/$base': must build at directory" >&2; exit 1; }
    echo "base resolves to $resolved" >>"$LOG"
  fi
  prev=$arg
done
exit 0
"""


def run(tmp_path: Path, *, image: str, existing: str = "", current: str = "my-cluster",
        contexts: tuple[str, ...] | None = None
        ) -> tuple[subprocess.CompletedProcess[str], list[str], Path]:
    """``contexts``: the kubeconfig's contexts (default: the user's, and the kind cluster's
    when it exists)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("kind", KIND), ("kubectl", KUBECTL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    # macOS: $TMPDIR is under /var, a symlink to /private/var (one level deeper).
    (tmp_path / "private" / "var").mkdir(parents=True, exist_ok=True)
    if not (tmp_path / "var").is_symlink():
        (tmp_path / "var").symlink_to(Path("private", "var"))
    log, state, known = tmp_path / "log", tmp_path / "state", tmp_path / "contexts"
    log.write_text("")
    state.write_text(current)
    if contexts is None:
        contexts = ("my-cluster", *([CONTEXT] if existing else []))
    known.write_text("".join(f"{c}\n" for c in contexts))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "STATE": str(state), "CONTEXTS": str(known), "EXISTING": existing,
           "TMPDIR": str(tmp_path / "var"),
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
    assert not [c for c in calls if c.startswith(("kind create", "kind export"))
                or (" config " in c and " get-contexts " not in c)], calls
    assert state.read_text().strip() == "my-cluster"


@pytest.mark.parametrize("current", ["my-cluster", ""])
def test_a_running_cluster_missing_from_the_kubeconfig_is_exported_and_context_kept(
        tmp_path: Path, current: str) -> None:
    proc, calls, state = run(tmp_path, image="smartid-operator:dev-1", existing="smartid-e2e",
                             current=current, contexts=("my-cluster",))
    assert proc.returncode == 0, proc.stderr
    assert "kind export kubeconfig --name smartid-e2e" in calls
    assert not [c for c in calls if c.startswith("kind create")]
    assert index(calls, "kind export") < index(calls, "kind load docker-image")
    assert state.read_text().strip() == current  # given back after kind took it
    assert (tmp_path / "contexts").read_text().split() == ["my-cluster", CONTEXT]


@pytest.mark.parametrize("tag", ["1.10", "10", "0x1F", "true", "null"])
def test_a_tag_yaml_would_read_as_another_type_stays_a_string(tmp_path: Path, tag: str) -> None:
    proc, _, _ = run(tmp_path, image=f"registry.local:5000/smartid-operator:{tag}")
    assert proc.returncode == 0, proc.stderr
    overlay = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert overlay["images"][0]["newTag"] == tag


def test_the_base_is_found_from_the_overlays_real_path(tmp_path: Path) -> None:
    """As on macOS: the overlay's folder reached through a symlink (here one level shallower
    than its target), which kustomize resolves before following the base."""
    proc, calls, _ = run(tmp_path, image="smartid-operator:dev-1")
    assert proc.returncode == 0, proc.stderr
    assert f"base resolves to {ROOT / 'deploy'}" in calls
    applied = [c for c in calls if c.startswith(f"kubectl --context {CONTEXT} apply") and
               f"-k {tmp_path / 'var'}/" in c]
    assert applied, calls  # the overlay did live under the symlinked temporary folder


def test_no_current_context_stays_none(tmp_path: Path) -> None:
    proc, _, state = run(tmp_path, image="smartid-operator:dev-1", current="")
    assert proc.returncode == 0, proc.stderr
    assert state.read_text().strip() == ""


@pytest.mark.parametrize("image", ["smartid-operator", "registry.local:5000/smartid-operator"])
def test_an_image_without_tag_is_refused(tmp_path: Path, image: str) -> None:
    proc, calls, _ = run(tmp_path, image=image)
    assert proc.returncode == 2 and "must carry a tag" in proc.stderr
    assert calls == []
