{{/*
The hardened pod and container security contexts every workload of the platform gets (Pod Security
Standard "restricted"): non-root numeric uid, no privilege escalation, read-only root filesystem,
every capability dropped, the runtime's default seccomp profile. Not configurable on purpose; only
the ids are (a vendored database image has its own uid).
Usage: include "imaging-lib.podSecurityContext" (dict "uid" 10001 "gid" 10001 "fsGroup" 10001)
*/}}
{{- define "imaging-lib.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .fsGroup | default .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "imaging-lib.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
