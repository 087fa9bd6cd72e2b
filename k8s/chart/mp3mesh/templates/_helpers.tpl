{{/* Labels Helm adds to every object's metadata (never to selectors, which stay the overlays'). */}}
{{- define "mp3mesh.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Whether a toggle in values drops this object. */}}
{{- define "mp3mesh.enabled" -}}
{{- $kind := .obj.kind -}}
{{- $v := .values -}}
{{- if and (eq $kind "HorizontalPodAutoscaler") (not $v.autoscaling.enabled) -}}
{{- else if and (eq $kind "Ingress") (not $v.ingress.enabled) -}}
{{- else if and (eq $kind "NetworkPolicy") (not $v.networkPolicies.enabled) -}}
{{- else if and (eq $kind "PodDisruptionBudget") (not $v.podDisruptionBudgets.enabled) -}}
{{- else if and (has (dig "metadata" "labels" "app.kubernetes.io/name" "" .obj) (list "postgres" "mongo" "rabbitmq" "mailpit")) (not $v.dependencies.enabled) -}}
{{- else -}}true{{- end -}}
{{- end }}

{{/* A container's image from values when it is one of the mesh's. */}}
{{- define "mp3mesh.image" -}}
{{- $repo := splitList ":" .image | first -}}
{{- if eq $repo "localhost/mp3mesh" -}}{{ printf "%s:%s" .values.image.mesh.repository .values.image.mesh.tag }}
{{- else if eq $repo "localhost/mp3mesh-envoy" -}}{{ printf "%s:%s" .values.image.envoy.repository .values.image.envoy.tag }}
{{- else -}}{{ .image }}{{- end -}}
{{- end }}
