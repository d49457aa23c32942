#!/usr/bin/env bash
# `make e2e-kind`, before pytest: the kind cluster, this build's operator image, and the
# manifests in order (CRD, wait until Established, operator, samples, wait for Mongo).
# Every kubectl call names the cluster's context; the current context is never switched.
#   KIND_CLUSTER  kind cluster name (created if missing)
#   IMAGE         the operator image just built, name:tag (a new tag per build)
set -euo pipefail
: "${KIND_CLUSTER:?}" "${IMAGE:?}"
case "${IMAGE##*/}" in
  *:*) ;;
  *) echo "IMAGE must carry a tag (name:tag), got '$IMAGE'" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
context="kind-$KIND_CLUSTER"
k() { kubectl --context "$context" "$@"; }

# kind makes the cluster it creates or exports the current context: give the user theirs back.
kind_keeping_context() {
  local previous
  previous=$(kubectl config current-context 2>/dev/null || true)
  kind "$@"
  if [ -n "$previous" ]; then
    kubectl config use-context "$previous" >/dev/null
  else
    kubectl config unset current-context >/dev/null
  fi
}
# grep without -q reads to the end: under pipefail, a writer cut short (SIGPIPE) fails the pipe.
if ! kind get clusters | grep -Fx "$KIND_CLUSTER" >/dev/null; then
  kind_keeping_context create cluster --name "$KIND_CLUSTER" --wait 120s
elif ! kubectl config get-contexts -o name | grep -Fx "$context" >/dev/null; then
  # The cluster runs but this kubeconfig does not know it (another KUBECONFIG, another user).
  kind_keeping_context export kubeconfig --name "$KIND_CLUSTER"
fi
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

# The CRD first, served before the operator starts: Kopf reads the API's resource list once
# at start-up and would never watch a kind that appeared after it.
# (Polled: `kubectl wait` errors out while a new CRD has no conditions yet.)
crds=$(k apply --server-side -k crds/ -o name)
established() {
  local crd
  for crd in $crds; do
    [ "$(k get "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" \
      = True ] || return 1
  done
}
for _ in $(seq 60); do established && break; sleep 1; done
established || { echo "CRDs not all Established after 60 s: $crds" >&2; exit 1; }

# The operator, with the image just built (the manifests name `smartid-operator:0.1.0`).
overlay=$(mktemp -d)
trap 'rm -rf "$overlay"' EXIT
# kustomize takes a base outside its folder only by a relative path, and follows it from the
# overlay's real path (symlinks resolved: on macOS the temporary folder is under /var, a link
# to /private/var), so both ends are real paths here too.
base=$("${PYTHON:-python3}" -c \
  'import os, sys; print(os.path.relpath(*map(os.path.realpath, sys.argv[1:])))' \
  "$PWD/deploy" "$overlay")
# The tag quoted: a tag like 1.10 is a number to YAML, and newTag must be a string.
cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$base]
images: [{name: smartid-operator, newName: ${IMAGE%:*}, newTag: "${IMAGE##*:}"}]
EOF
k apply --server-side -k "$overlay"
k -n smartid rollout status deployment/smartid-operator --timeout=180s

# The samples, and Mongo Ready before any test starts: the first mongo:7 pull can take
# minutes, which the tests' own waits are not sized for.
k apply --server-side -k deploy/samples
k -n smartid rollout status statefulset/mongo --timeout=600s
