{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cloudinfer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name, plus the chart name unless already in it. */}}
{{- define "cloudinfer-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The full name plus "-SUFFIX", still a DNS label of at most 63 characters (a Service name
must be one): the full name is shortened, never the suffix. Call with (list $ "metrics").
*/}}
{{- define "cloudinfer-operator.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- $base := include "cloudinfer-operator.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "cloudinfer-operator.metricsServiceName" -}}
{{- include "cloudinfer-operator.suffixedName" (list . "metrics") }}
{{- end }}

{{- define "cloudinfer-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudinfer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudinfer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudinfer-operator.labels" -}}
helm.sh/chart: {{ include "cloudinfer-operator.chart" . }}
{{ include "cloudinfer-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: cloudinfer-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cloudinfer-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudinfer-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when the operator watches every namespace (no watchNamespaces given). */}}
{{- define "cloudinfer-operator.clusterWide" -}}
{{- if empty .Values.watchNamespaces }}true{{- end }}
{{- end }}

{{/* [REGISTRY/]REPOSITORY@DIGEST, or [REGISTRY/]REPOSITORY:TAG without a digest. */}}
{{- define "cloudinfer-operator.image" -}}
{{- $repository := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, shared by the ClusterRole (all namespaces) and the per-namespace
Roles. Every rule names the code path that needs it; keep the verbs minimal.
*/}}
{{- define "cloudinfer-operator.rules" -}}
# Kopf lists and watches both kinds (no get: it never reads one object by name) and
# patches the objects themselves: the finalizer cloudinfer.dev/finalizer (Stop on delete,
# and the daemons Kopf runs per object), Kopf's progress and diff-base annotations, and on
# CloudAccounts the in-use finalizer and its record (main/holds.py). No
# create/update/delete: users own these objects.
- apiGroups: ["cloudinfer.dev"]
  resources: ["inferenceservices", "cloudaccounts"]
  verbs: ["list", "watch", "patch"]
# Status writes (conditions, observed, journal) go to the status subresource as JSON
# merge patches.
- apiGroups: ["cloudinfer.dev"]
  resources: ["inferenceservices/status", "cloudaccounts/status"]
  verbs: ["patch"]
# CloudAccount.spec.credentialsSecretRef: the access key pair is read by name only. No
# list or watch, so the operator cannot enumerate Secrets. Patch: only the in-use finalizer,
# while an InferenceService with onDelete: Stop needs the Secret to stop its cloud service
# (main/holds.py; a JSON patch of /metadata/finalizers, never data).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "patch"]
# CloudAccount.spec.caBundleRef: extra CA certificates, read by name only; patch: the same
# in-use finalizer.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "patch"]
# Events on InferenceServices and CloudAccounts: the operator (and Kopf, for its handler
# warnings) posts each core/v1 Event as a new object (create only; never updated or
# aggregated, no events.k8s.io).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.peering.enabled }}
# Kopf peering (--peering): list and watch the peering object for other operators'
# keep-alives, and patch our own keep-alive into its status.
- apiGroups: ["kopf.dev"]
  resources: [{{ if include "cloudinfer-operator.clusterWide" . }}"clusterkopfpeerings"{{ else }}"kopfpeerings"{{ end }}]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/*
Cluster-scoped rules Kopf needs in every mode, in a ClusterRole even when the operator only
watches some namespaces (these resources have no namespace).
*/}}
{{- define "cloudinfer-operator.clusterRules" -}}
# Kopf scans the served resources at startup, then watches CRDs so that CRDs created or
# changed later (e.g. applied in the same sync as the operator) are noticed without a
# restart. Without it Kopf retries the listing with errors for about a minute, then runs
# blind to CRD changes.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if not (include "cloudinfer-operator.clusterWide" .) }}
# With --namespace, Kopf lists namespaces (then watches them) to match its namespace
# patterns before it starts any watch. Without it, startup stalls about a minute in
# retries before Kopf falls back to the literal names.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/*
The peering priority as the flag expects it: "auto", or the integer in full. A values file
gives YAML numbers as float64, which print as 1e+06.
*/}}
{{- define "cloudinfer-operator.priority" -}}
{{- if kindIs "string" .Values.peering.priority }}
{{- .Values.peering.priority }}
{{- else }}
{{- int64 .Values.peering.priority }}
{{- end }}
{{- end }}
