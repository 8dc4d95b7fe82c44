{{/*
Names.  fullname is the prefix of every object: the release name when it
already contains the chart's name, else "<release>-gpupool"; at most 63
characters (a label value), shortened further where suffixes follow.
*/}}
{{- define "gpupool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpupool.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpupool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "gpupool.labels" -}}
helm.sh/chart: {{ include "gpupool.chart" . }}
app.kubernetes.io/name: {{ include "gpupool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpupool
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one part: (dict "ctx" $ "component" "agent").  Never
changed by an upgrade (selectors are immutable).
*/}}
{{- define "gpupool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpupool.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gpupool.componentLabels" -}}
{{ include "gpupool.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The gpupool image, by digest when one is given. */}}
{{- define "gpupool.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Object names of the parts. */}}
{{- define "gpupool.agent.fullname" -}}{{ include "gpupool.fullname" . }}-agent{{- end }}
{{- define "gpupool.scheduler.fullname" -}}{{ include "gpupool.fullname" . }}-scheduler{{- end }}
{{- define "gpupool.webhook.fullname" -}}{{ include "gpupool.fullname" . }}-webhook{{- end }}
{{- define "gpupool.scaler.fullname" -}}{{ include "gpupool.fullname" . }}-scaler{{- end }}
{{- define "gpupool.webhook.tlsSecret" -}}{{ include "gpupool.fullname" . }}-webhook-tls{{- end }}

{{/*
The names of the extended resources gpupool's scheduler is asked about
(the managedResources of its extender), one per line: gpupool's own, the
per-model names, and HAMi's when hamiNames is on.
*/}}
{{- define "gpupool.managedResources" -}}
gpupool.io/vgpu
gpupool.io/vgpu-memory
gpupool.io/vgpu-memory-percent
gpupool.io/vgpu-cores
gpupool.io/priority
{{- range .Values.scheduler.modelNames }}
gpupool.io/vgpu-{{ . | lower }}
{{- end }}
{{- if .Values.hamiNames }}
nvidia.com/gpu
nvidia.com/gpumem
nvidia.com/gpumem-percentage
nvidia.com/gpucores
nvidia.com/priority
{{- end }}
{{- end }}
