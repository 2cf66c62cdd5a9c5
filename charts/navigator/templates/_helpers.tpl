{{/* The chart's name, overridable. */}}
{{- define "navigator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of the release's objects: the release name, suffixed with the chart's unless it holds it. */}}
{{- define "navigator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods; never change them (a Deployment's selector is immutable). */}}
{{- define "navigator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "navigator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "navigator.labels" -}}
{{ include "navigator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: navigator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "navigator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "navigator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image: by digest when one is given, else by tag (the chart's appVersion by default). */}}
{{- define "navigator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The leader Lease's name. */}}
{{- define "navigator.leaseName" -}}
{{- default (include "navigator.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
The ClusterRoles of the role catalogue (templates/roles.yaml), which the operator binds: ProviderOrg
administrators and AccessGrants become RoleBindings to them. Kept in step with roles.yaml by the packaging
tests, which compare this list with the ClusterRoles the chart renders.
*/}}
{{- define "navigator.catalogueRoles" -}}
{{- range $role := list "ProviderAdministrator" "ProviderOperationsAdministrator" "ProviderOperationsUser" "ProviderAccountAdministrator" "ProviderBillingUser" "ProviderSupportUser" "ProviderServiceManager" "ProviderDeveloper" "CustomerAdministrator" "CustomerUser" "CustomerBillingUser" "DistributorAdministrator" "DistributorUser" "ResellerAdministrator" "ResellerUser" }}
- navigator-{{ kebabcase $role }}
{{- end }}
{{- end -}}

{{/* The namespaces whose Secrets the operator may read: the release's and those listed in values. */}}
{{- define "navigator.credentialNamespaces" -}}
{{- $namespaces := list .Release.Namespace -}}
{{- range .Values.rbac.credentialNamespaces }}{{ $namespaces = append $namespaces . }}{{ end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}
