{{/*
The objects keep the kustomize install's names and labels (deploy/base), so the two render
the same; Helm's own labels are added beside them.
*/}}
{{- define "smartid.name" -}}smartid-operator{{- end -}}

{{/*
Labels of an object: the kustomize base's (deploy/base labels the objects it holds, not the
overlays' RBAC), Helm's, then commonLabels. Called with a list: the root context, and
whether the object is one of the base's.
*/}}
{{- define "smartid.labels" -}}
{{- $ctx := index . 0 -}}
{{- if index . 1 }}
app.kubernetes.io/name: smartid-operator
app.kubernetes.io/part-of: smartid
{{- end }}
{{ include "smartid.helmLabels" $ctx }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Helm's own labels: the only difference from `kubectl kustomize deploy/...`. */}}
{{- define "smartid.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/*
metadata.labels and, when there are any, metadata.annotations of every object. Called with
a list: the root context, whether the object is one of the kustomize base's (see
smartid.labels), and annotations of its own (a dict; commonAnnotations win over them).
*/}}
{{- define "smartid.metadata" -}}
{{- $ctx := index . 0 -}}
{{- $annotations := merge (deepCopy $ctx.Values.commonAnnotations) (index . 2) -}}
labels:
  {{- include "smartid.labels" (list $ctx (index . 1)) | nindent 2 }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "smartid.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- .Values.image.repository -}}
{{- with $tag }}:{{ . }}{{ end -}}
{{- with .Values.image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* The namespaces that get a Role: watchNamespaces, else the release namespace. */}}
{{- define "smartid.roleNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The rules both scopes share: deploy/overlays/namespaced/role.yaml, rule for rule (the
cluster-wide ClusterRole adds two before them). Every rule says why it exists.
*/}}
{{- define "smartid.rules" -}}
# The resource: watch it (the operator writes no annotation, label or finalizer on it).
- apiGroups: [smartid.io]
  resources: [smartiddatabases]
  verbs: [get, list, watch]
# Its status, by server-side apply.
- apiGroups: [smartid.io]
  resources: [smartiddatabases/status]
  verbs: [get, patch]
# Owner references with blockOwnerDeletion on children: clusters that enforce
# OwnerReferencesPermissionEnforcement (OpenShift) require this.
- apiGroups: [smartid.io]
  resources: [smartiddatabases/finalizers]
  verbs: [update]
# An Event for every meaningful transition (Kopf posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The Mongo URI: read the one Secret the spec names; never list or watch Secrets.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Children: server-side apply (patch; create when new); watched so an edit or a deletion
# by someone else is put right at once. The garbage collector deletes them.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
# The Mongo workload's pods: their readiness wakes the databases that use it, so an
# outage and a return show within a second. get: the operator's own pod, for its image.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# The Mongo workload the spec names: it must exist.
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get]
# Deployments: the Mongo workload may be one (get); the recovery agent is one, applied
# server-side, watched so an edit is put right, deleted when recovery is switched off.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# The backup CronJob: applied server-side, watched (an edit is put right; its status gives
# lastScheduleTime), deleted when backups are switched off.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [list, watch, create, patch, delete]
# Jobs: the backup CronJob's (scheduled or made by hand) are watched for status.backup;
# a SmartIDRestore's restore Job and an outage test's writer Job are created, and read
# (get) until they finish, also after an operator restart.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
# Restores (SmartIDRestore): watched; their status by server-side apply; finalizers: the
# restore Job's owner reference blocks the restore's deletion until the Job is gone.
- apiGroups: [smartid.io]
  resources: [smartidrestores]
  verbs: [get, list, watch]
- apiGroups: [smartid.io]
  resources: [smartidrestores/status]
  verbs: [get, patch]
- apiGroups: [smartid.io]
  resources: [smartidrestores/finalizers]
  verbs: [update]
# Outage-test runs (SmartIDOutageTest): watched; get to re-read one found Running after a
# restart; patch to set its owner (the database); create and delete for the runs
# spec.chaos.schedule makes and the old ones it prunes.
- apiGroups: [smartid.io]
  resources: [smartidoutagetests]
  verbs: [get, list, watch, create, patch, delete]
# A run's status, by server-side apply.
- apiGroups: [smartid.io]
  resources: [smartidoutagetests/status]
  verbs: [get, patch]
# Owner references with blockOwnerDeletion on a run's writer Job and report ConfigMap.
- apiGroups: [smartid.io]
  resources: [smartidoutagetests/finalizers]
  verbs: [update]
# The outage: the replicas of the Mongo workload the database names, read and set through
# the scale subresource only.
- apiGroups: [apps]
  resources: [statefulsets/scale, deployments/scale]
  verbs: [get, patch]
# The smartid.io/outage-test annotation on that workload: its replicas, written before it
# is scaled, so an operator restarted mid-run can give them back.
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [patch]
{{- end -}}
