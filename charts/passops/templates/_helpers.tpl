{{/* Names, labels and shared snippets of the passops chart. */}}

{{- define "passops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; components append -gateway, -controller, -migrate. */}}
{{- define "passops.fullname" -}}
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

{{- define "passops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "passops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "passops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "passops.labels" -}}
helm.sh/chart: {{ include "passops.chart" . }}
{{ include "passops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: passops
{{- end }}

{{/* Labels of one component: include "passops.componentLabels" (list . "gateway") */}}
{{- define "passops.componentLabels" -}}
{{ include "passops.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "passops.componentSelectorLabels" -}}
{{ include "passops.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "passops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The namespace where PassPurchases live (PASSOPS_NAMESPACE) and the Roles are granted. */}}
{{- define "passops.purchaseNamespace" -}}
{{- default .Release.Namespace .Values.purchaseNamespace }}
{{- end }}

{{- define "passops.secretName" -}}
{{- required "existingSecret is required: create a Secret with the passops credentials (see docs/deploy.md) and set existingSecret to its name" .Values.existingSecret }}
{{- end }}

{{- define "passops.gatewayServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-gateway" (include "passops.fullname" .) }}
{{- else }}
{{- default "default" .Values.serviceAccount.gatewayName }}
{{- end }}
{{- end }}

{{- define "passops.controllerServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-controller" (include "passops.fullname" .) }}
{{- else }}
{{- default "default" .Values.serviceAccount.controllerName }}
{{- end }}
{{- end }}

{{/* The ClusterRole is cluster-scoped: its name carries the release namespace to stay unique. */}}
{{- define "passops.clusterRoleName" -}}
{{- printf "%s-%s" (include "passops.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A secret-sourced env var: include "passops.secretEnv" (list . "PASSOPS_X" "keyName" optional) */}}
{{- define "passops.secretEnv" -}}
{{- $root := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "passops.secretName" $root }}
      key: {{ index $root.Values.secretKeys (index . 2) | quote }}
      optional: {{ index . 3 }}
{{- end }}
