{{/*
Chart name, truncated to 63 characters (the DNS label limit for names).
*/}}
{{- define "crossguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, prefixed to the chart name unless
it already contains it.
*/}}
{{- define "crossguard.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "crossguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "crossguard.labels" -}}
helm.sh/chart: {{ include "crossguard.chart" . }}
{{ include "crossguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: crossguard
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable across upgrades (a Deployment's selector is immutable).
*/}}
{{- define "crossguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crossguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "crossguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crossguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Operator image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "crossguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Leader election and PDB settings, with the chart's defaults when an upgrade with
--reuse-values carries a values file from before they existed.
*/}}
{{- define "crossguard.leaderElection" -}}
{{- $le := .Values.leaderElection | default dict -}}
{{- $enabled := true -}}
{{- if hasKey $le "enabled" -}}{{- $enabled = $le.enabled -}}{{- end -}}
{{- dict "enabled" $enabled "lease" (int (dig "leaseDurationSeconds" 15 $le)) "renew" (int (dig "renewBeforeSeconds" 5 $le)) | toJson -}}
{{- end }}

{{/*
Operator replicas: replicaCount, or 2 with a shared (s3://) store and leader election,
else 1 (the file store is per pod). More than one replica needs both.
*/}}
{{- define "crossguard.replicas" -}}
{{- $le := include "crossguard.leaderElection" . | fromJson -}}
{{- $shared := hasPrefix "s3://" .Values.store.url -}}
{{- $replicas := .Values.replicaCount | default (ternary 2 1 (and $shared $le.enabled)) | int -}}
{{- if and (gt $replicas 1) (not $shared) -}}
{{- fail (printf "replicaCount %d needs a shared store: store.url %q is a per-pod file store; set store.url to s3://bucket/prefix or replicaCount to 1" $replicas .Values.store.url) -}}
{{- end -}}
{{- if and (gt $replicas 1) (not $le.enabled) -}}
{{- fail (printf "replicaCount %d needs leaderElection.enabled: without it every replica would act" $replicas) -}}
{{- end -}}
{{- if and $le.enabled (or (lt (int $le.renew) 4) (lt (int $le.lease) (add (int $le.renew) 3 | int))) -}}
{{- fail "leaderElection.renewBeforeSeconds must be at least 4, and leaseDurationSeconds at least renewBeforeSeconds + 3" -}}
{{- end -}}
{{- $replicas -}}
{{- end }}

{{/*
awsRateLimits as the operator's SERVICE=BURST/PER_SECOND list, comma-separated (the
chart's defaults when an upgrade with --reuse-values has no such value).
*/}}
{{- define "crossguard.awsRateLimits" -}}
{{- $parts := list -}}
{{- range $service, $limit := (.Values.awsRateLimits | default dict) -}}
{{- if $limit -}}
{{- $parts = append $parts (printf "%s=%d/%d" $service (int $limit.burst) (int $limit.perSecond)) -}}
{{- end -}}
{{- end -}}
{{- join "," $parts -}}
{{- end }}

{{/*
This release's shard as "index/count", refused when index is not below count or when
the store is the per-pod file store (shards share one s3:// store); "" when
unsharded (count 1, or no shard values from an upgrade with --reuse-values).
*/}}
{{- define "crossguard.shard" -}}
{{- $shard := .Values.shard | default dict -}}
{{- $index := int (dig "index" 0 $shard) -}}
{{- $count := int (dig "count" 1 $shard) -}}
{{- if ge $index $count -}}
{{- fail (printf "shard.index %d must be below shard.count %d (shards count from 0: 0 to %d)" $index $count (sub $count 1 | int)) -}}
{{- end -}}
{{- if and (gt $count 1) (not (hasPrefix "s3://" .Values.store.url)) -}}
{{- fail (printf "shard.count %d needs a shared store: store.url %q is a per-pod file store, and an account that moves between shards must keep its data; set store.url to s3://bucket/prefix" $count .Values.store.url) -}}
{{- end -}}
{{- if gt $count 1 -}}{{ printf "%d/%d" $index $count }}{{- end -}}
{{- end }}
