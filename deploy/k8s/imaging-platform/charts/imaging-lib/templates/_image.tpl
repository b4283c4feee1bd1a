{{/*
An image reference from {registry, repository, tag, digest} and the global registry override.
The digest, when given, pins the image whatever the tag says (offline mirrors copy digests intact).
Usage: include "imaging-lib.image" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion)
*/}}
{{- define "imaging-lib.image" -}}
{{- $global := .global | default dict -}}
{{- $registry := $global.imageRegistry | default .image.registry -}}
{{- $ref := .image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if .image.digest -}}
{{- if not (hasPrefix "sha256:" .image.digest) }}{{ fail (printf "image digest %q must look like sha256:<64 hex>" .image.digest) }}{{ end -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString (.image.tag | default .defaultTag)) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets from the global list: [name] or [{name: x}] both accepted. */}}
{{- define "imaging-lib.pullSecrets" -}}
{{- $global := .global | default dict -}}
{{- with $global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}
