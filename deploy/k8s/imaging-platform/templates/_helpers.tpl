{{/*
Facts about the services that are code, not configuration: the Python package a container runs,
the URL prefix under /api and /ui, and which network listeners it opens.
*/}}
{{/* fhir: the FHIR resource types the service declares (its adapters/fhir_capability.py), routed to it under /fhir/R4. */}}
{{- define "imaging.catalog" -}}
print-scp:       {module: print_scp,       prefix: print,           title: "DICOM print (film)"}
registration:    {module: registration,    prefix: registration,    title: "Registration and HIS interface", fhir: [Patient, ServiceRequest], entry: true}
worklist:        {module: worklist,        prefix: worklist,        title: "Modality worklist and MPPS"}
scheduling:      {module: scheduling,      prefix: scheduling,      title: "Scheduling", fhir: [Schedule, Slot, Appointment]}
reporting:       {module: reporting,       prefix: reporting,       title: "Reporting", fhir: [DiagnosticReport, Observation]}
critical-values: {module: critical_values, prefix: critical-values, title: "Critical values", fhir: [Communication, Task]}
queue-calling:   {module: queue_calling,   prefix: queue,           title: "Queue calling"}
dashboard:       {module: dashboard,       prefix: dashboard,       title: "Department dashboard"}
patient-portal:  {module: patient_portal,  prefix: patient,         title: "Patient portal (sign-in by SMS code, exams, messages)"}
{{- end -}}

{{/*
The service that answers the rest of the FHIR base /fhir/R4 (/metadata, which lists every service's
resources whichever service answers it, and unknown types, as an OperationOutcome): the first enabled
service, in key order, that serves FHIR - the one the all-in-one process picks too. Empty if none.
*/}}
{{- define "imaging.fhirBaseService" -}}
{{- $catalog := include "imaging.catalog" . | fromYaml -}}
{{- $found := "" -}}
{{- range $key, $svc := .Values.services -}}
{{- if and $svc.enabled (index $catalog $key).fhir (not $found) -}}
{{- $found = $key -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}

{{- define "imaging.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "imaging" .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: (dict "root" $ "service" "worklist") */}}
{{- define "imaging.serviceName" -}}
{{- printf "%s-%s" (include "imaging.fullname" .root) .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imaging.labels" -}}
{{ include "imaging-lib.labels" (dict "root" .root "name" .name "component" .component) }}
{{- end -}}

{{/* Every pod of the platform (services, hook Job, backup, tests) carries these two labels. */}}
{{- define "imaging.platformSelector" -}}
app.kubernetes.io/part-of: imaging-platform
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "imaging.image" -}}
{{- include "imaging-lib.image" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{- define "imaging.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "imaging.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "imaging.podSecurityContext" -}}
{{- include "imaging-lib.podSecurityContext" (dict "uid" .Values.securityContext.runAsUser "gid" .Values.securityContext.runAsGroup "fsGroup" .Values.securityContext.fsGroup) -}}
{{- end -}}

{{- define "imaging.containerSecurityContext" -}}
{{- include "imaging-lib.containerSecurityContext" (dict "uid" .Values.securityContext.runAsUser "gid" .Values.securityContext.runAsGroup) -}}
{{- end -}}

{{/*
Infrastructure endpoints: the operator-run cluster (CloudNativePG, RabbitMQ Cluster Operator) or the
small-site Redis subchart when enabled, else the external host.
Each returns a dict as YAML: host, port, secret, passwordKey (and more per kind).
*/}}
{{- define "imaging.db" -}}
{{- if .Values.cloudnativepg.enabled -}}
{{- $c := .Values.cloudnativepg -}}
{{- $cluster := printf "%s-pg" (include "imaging.fullname" .) -}}
host: {{ $cluster }}-rw
port: 5432
database: {{ $c.auth.database }}
user: {{ $c.auth.username }}
sslmode: {{ $c.sslmode }}
selector: {cnpg.io/cluster: {{ $cluster }}}
{{- if $c.auth.existingSecret }}
secret: {{ $c.auth.existingSecret }}
passwordKey: password
{{- else }}
{{- /* The operator's generated Secret: uri (the whole URL, password included), username, password. */}}
secret: {{ $cluster }}-app
passwordKey: password
userKey: username
uriKey: uri
{{- end }}
{{- else -}}
{{- $e := .Values.externalDatabase -}}
host: {{ required "externalDatabase.host is required (or set cloudnativepg.enabled=true for PostgreSQL run by the CloudNativePG operator)" $e.host }}
port: {{ $e.port }}
database: {{ $e.database }}
user: {{ $e.user }}
secret: {{ required "externalDatabase.existingSecret is required: a Secret holding the database password (the chart ships no default password)" $e.existingSecret }}
passwordKey: {{ $e.passwordKey }}
sslmode: {{ $e.sslmode }}
{{- end -}}
{{- end -}}

{{- define "imaging.mq" -}}
{{- if .Values.rabbitmqCluster.enabled -}}
{{- $name := printf "%s-mq" (include "imaging.fullname" .) -}}
{{- $tls := .Values.rabbitmqCluster.tls.secretName -}}
{{- /* The operator's <name>-default-user Secret holds host, port, username and password. With TLS the
listener is 5671 only, so the port is the chart's (the Secret's port key names the AMQP one). */}}
host: {{ $name }}
port: {{ ternary 5671 5672 (ne $tls "") }}
vhost: /
user: $(IMAGING_AMQP_USER)
userKey: username
hostKey: host
portKey: {{ ternary "" "port" (ne $tls "") | quote }}
secret: {{ $name }}-default-user
passwordKey: password
urlKey: ""
scheme: {{ ternary "amqps" "amqp" (ne $tls "") }}
selector: {app.kubernetes.io/name: {{ $name }}}
{{- else -}}
{{- $e := .Values.externalRabbitmq -}}
host: {{ if $e.urlKey }}{{ $e.host | quote }}{{ else }}{{ required "externalRabbitmq.host is required (or set rabbitmqCluster.enabled=true for RabbitMQ run by the RabbitMQ Cluster Operator)" $e.host }}{{ end }}
port: {{ $e.port }}
vhost: {{ $e.vhost | quote }}
user: {{ $e.user }}
secret: {{ required "externalRabbitmq.existingSecret is required: a Secret holding the RabbitMQ password or URL (the chart ships no default password)" $e.existingSecret }}
passwordKey: {{ $e.passwordKey }}
urlKey: {{ $e.urlKey | quote }}
scheme: {{ ternary "amqps" "amqp" $e.tls }}
{{- end -}}
{{- end -}}

{{- define "imaging.redis" -}}
{{- if .Values.redis.enabled -}}
host: {{ printf "%s-redis" .Release.Name }}
port: 6379
database: 0
secret: {{ .Values.redis.auth.existingSecret }}
passwordKey: {{ .Values.redis.auth.passwordKey }}
urlKey: ""
scheme: redis
selector: {app.kubernetes.io/name: redis, app.kubernetes.io/instance: {{ .Release.Name }}}
{{- else -}}
{{- $e := .Values.externalRedis -}}
host: {{ if $e.urlKey }}{{ $e.host | quote }}{{ else }}{{ required "externalRedis.host is required (or set redis.enabled=true for the one-pod in-cluster Redis of small sites)" $e.host }}{{ end }}
port: {{ $e.port }}
database: {{ $e.database }}
secret: {{ $e.existingSecret | quote }}
passwordKey: {{ $e.passwordKey }}
urlKey: {{ $e.urlKey | quote }}
scheme: {{ ternary "rediss" "redis" $e.tls }}
{{- end -}}
{{- end -}}

{{/*
Connection environment shared by services, the migration Job and the backup: DATABASE_URL (password
as PGPASSWORD, which asyncpg and pg_dump read, so no URL escaping), AMQP_URL and REDIS_URL (password
spliced in by Kubernetes' $(VAR) expansion; or the whole URL from the Secret's urlKey).
*/}}
{{- define "imaging.connectionEnv" -}}
{{- $db := include "imaging.db" . | fromYaml -}}
{{- $mq := include "imaging.mq" . | fromYaml -}}
{{- $rd := include "imaging.redis" . | fromYaml -}}
{{- if $db.uriKey }}
- name: IMAGING_PG_URI
  valueFrom:
    secretKeyRef: {name: {{ $db.secret | quote }}, key: {{ $db.uriKey | quote }}}
- name: DATABASE_URL
  value: {{ printf "$(IMAGING_PG_URI)?sslmode=%s" $db.sslmode | quote }}
{{- else }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $db.secret | quote }}, key: {{ $db.passwordKey | quote }}}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s@%s:%v/%s?sslmode=%s" $db.user $db.host $db.port $db.database $db.sslmode | quote }}
{{- end }}
{{- if $mq.urlKey }}
- name: AMQP_URL
  valueFrom:
    secretKeyRef: {name: {{ $mq.secret | quote }}, key: {{ $mq.urlKey | quote }}}
{{- else }}
{{- if $mq.userKey }}
- name: IMAGING_AMQP_USER
  valueFrom:
    secretKeyRef: {name: {{ $mq.secret | quote }}, key: {{ $mq.userKey | quote }}}
{{- end }}
{{- if $mq.hostKey }}
- name: IMAGING_AMQP_HOST
  valueFrom:
    secretKeyRef: {name: {{ $mq.secret | quote }}, key: {{ $mq.hostKey | quote }}}
{{- end }}
{{- if $mq.portKey }}
- name: IMAGING_AMQP_PORT
  valueFrom:
    secretKeyRef: {name: {{ $mq.secret | quote }}, key: {{ $mq.portKey | quote }}}
{{- end }}
- name: IMAGING_AMQP_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $mq.secret | quote }}, key: {{ $mq.passwordKey | quote }}}
- name: AMQP_URL
  value: {{ printf "%s://%s:$(IMAGING_AMQP_PASSWORD)@%s:%v/%s" $mq.scheme $mq.user (ternary "$(IMAGING_AMQP_HOST)" $mq.host (ne ($mq.hostKey | default "") "")) (ternary "$(IMAGING_AMQP_PORT)" (toString $mq.port) (ne ($mq.portKey | default "") "")) (urlquery $mq.vhost) | quote }}
{{- end }}
{{- if $rd.urlKey }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $rd.secret | quote }}, key: {{ $rd.urlKey | quote }}}
{{- else if $rd.secret }}
- name: IMAGING_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $rd.secret | quote }}, key: {{ $rd.passwordKey | quote }}}
- name: REDIS_URL
  value: {{ printf "%s://:$(IMAGING_REDIS_PASSWORD)@%s:%v/%v" $rd.scheme $rd.host $rd.port $rd.database | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "%s://%s:%v/%v" $rd.scheme $rd.host $rd.port $rd.database | quote }}
{{- end }}
{{- end -}}

{{/* IMAGING_AUDIT_OWNER_DATABASE_URL for the migration Job and the audit CronJob (never the services). */}}
{{- define "imaging.auditOwnerEnv" -}}
{{- with .Values.audit.ownerDatabase.existingSecret }}
- name: IMAGING_AUDIT_OWNER_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: {{ $.Values.audit.ownerDatabase.key | quote }}}}
{{- end }}
{{- end -}}

{{/* Settings every platform container gets (services and the migration Job). */}}
{{- define "imaging.commonEnv" -}}
- name: IMAGING_ENV
  value: {{ .Values.environment | quote }}
- name: IMAGING_NAMESPACE
  value: {{ .Values.platformNamespace | quote }}
- name: IMAGING_EVENT_QUEUE_TYPE
  value: {{ .Values.events.queueType | quote }}
- name: IMAGING_STARTUP_WAIT_SECONDS
  value: {{ .Values.startupWaitSeconds | quote }}
- name: IMAGING_DATA_DIR
  value: /var/lib/imaging
- name: IMAGING_HTTP_PORT
  value: "8080"
- name: IMAGING_LOG_LEVEL
  value: {{ .Values.log.level | quote }}
- name: IMAGING_LOG_JSON
  value: {{ .Values.log.json | quote }}
- name: IMAGING_AUDIT_RETENTION_DAYS
  value: {{ .Values.audit.retentionDays | quote }}
{{- with .Values.audit.hmacKey.existingSecret }}
- name: IMAGING_AUDIT_HMAC_KEY
  valueFrom: {secretKeyRef: {name: {{ . | quote }}, key: {{ $.Values.audit.hmacKey.key | quote }}}}
{{- end }}
{{ include "imaging.connectionEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* "gateway" when the DICOM/MLLP listeners are exposed by TCPRoutes, else "service". */}}
{{- define "imaging.tcpMode" -}}
{{- $served := .Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1alpha2/TCPRoute" -}}
{{- if eq .Values.tcpExposure "gateway" -}}
{{- if not .Values.gateway.enabled }}{{ fail "tcpExposure=gateway needs gateway.enabled=true" }}{{ end -}}
{{- if not $served }}{{ fail "tcpExposure=gateway needs the Gateway API TCPRoute CRD (gateway.networking.k8s.io/v1alpha2); install it or use tcpExposure=service" }}{{ end -}}
gateway
{{- else if and (eq .Values.tcpExposure "auto") .Values.gateway.enabled $served -}}
gateway
{{- else -}}
service
{{- end -}}
{{- end -}}

{{/* The TCP listeners: which service owns each, its port and its DICOM TLS port (0 = none). */}}
{{- define "imaging.tcpListeners" -}}
{{- $tls := .Values.dicom.tls -}}
{{- if (index .Values.services "print-scp").enabled }}
print:
  service: print-scp
  port: {{ .Values.dicom.print.port }}
  portName: dicom
  objectName: print-dicom
  tlsPort: {{ ternary $tls.printPort 0 $tls.enabled }}
  peers: modalityPeers
  title: "DICOM print SCP (AE {{ .Values.dicom.print.aeTitle }})"
{{- end }}
{{- if .Values.services.worklist.enabled }}
worklist:
  service: worklist
  port: {{ .Values.dicom.worklist.port }}
  portName: dicom
  objectName: worklist-dicom
  tlsPort: {{ ternary $tls.worklistPort 0 $tls.enabled }}
  peers: modalityPeers
  title: "DICOM modality worklist (AE {{ .Values.dicom.worklist.aeTitle }})"
{{- end }}
{{- if .Values.services.registration.enabled }}
mllp:
  service: registration
  port: {{ .Values.hl7.mllpPort }}
  portName: mllp
  objectName: his-mllp
  tlsPort: 0
  peers: hisPeers
  title: "HL7 v2 over MLLP (HIS)"
{{- end }}
{{- if and (index .Values.services "critical-values").enabled .Values.hl7.criticalAck.enabled }}
criticalAck:
  service: critical-values
  port: {{ .Values.hl7.criticalAck.port }}
  portName: mllp
  objectName: critical-ack-mllp
  tlsPort: 0
  peers: clinicianPeers
  title: "HL7 acknowledgements of critical values over MLLP (clinician systems)"
{{- end }}
{{- end -}}

{{/* The external base URL: publicUrl, else the gateway/ingress host name (https with a certificate). */}}
{{- define "imaging.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.gateway.enabled .Values.gateway.hostname -}}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.gateway.tls.existingSecret "")) .Values.gateway.hostname -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hostname -}}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.ingress.tls.existingSecret "")) .Values.ingress.hostname -}}
{{- end -}}
{{- end -}}

{{/* Cross-field checks the JSON schema cannot express, with messages naming the fix. */}}
{{- define "imaging.validate" -}}
{{- if .Values.services.registration.enabled -}}
{{- required "auth.jwtPrivateKey.existingSecret is required: a Secret with the RSA private key (PEM) that signs staff tokens" .Values.auth.jwtPrivateKey.existingSecret | and "" -}}
{{- end -}}
{{- required "audit.hmacKey.existingSecret is required: a Secret with 32+ random characters (key hmac-key) that keys the audit chain's HMAC" .Values.audit.hmacKey.existingSecret | and "" -}}
{{- if .Values.services.reporting.enabled -}}
{{- required "auth.reportingSigningSecret.existingSecret is required: a Secret with a random string of 32+ characters that encrypts radiologists' signing keys" .Values.auth.reportingSigningSecret.existingSecret | and "" -}}
{{- end -}}
{{- if (index .Values.services "patient-portal").enabled -}}
{{- required "auth.patientTokenSecret.existingSecret is required: a Secret with a random string of 32+ characters that signs patients' session tokens" .Values.auth.patientTokenSecret.existingSecret | and "" -}}
{{- end -}}
{{- if eq .Values.filmStorage.type "s3" -}}
{{- required "filmStorage.s3.bucket is required when filmStorage.type=s3" .Values.filmStorage.s3.bucket | and "" -}}
{{- required "filmStorage.s3.existingSecret is required when filmStorage.type=s3 (access key id and secret)" .Values.filmStorage.s3.existingSecret | and "" -}}
{{- end -}}
{{- if and .Values.dicom.tls.enabled (not .Values.dicom.tls.existingSecret) -}}
{{- fail "dicom.tls.existingSecret is required when dicom.tls.enabled=true (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.gateway.enabled .Values.ingress.enabled -}}
{{- fail "choose one of gateway.enabled and ingress.enabled" -}}
{{- end -}}
{{- if and .Values.gateway.enabled .Values.gateway.create (not .Values.gateway.className) -}}
{{- fail "gateway.className is required when gateway.create=true (the GatewayClass of your gateway controller)" -}}
{{- end -}}
{{- if and .Values.gateway.enabled (not .Values.gateway.create) (not .Values.gateway.parentRefs) -}}
{{- fail "gateway.parentRefs is required when gateway.create=false (the existing Gateway to attach routes to)" -}}
{{- end -}}
{{- include "imaging.checkOperatorCrds" . -}}
{{- $_ := include "imaging.tcpMode" . -}}
{{- $_ := include "imaging.db" . -}}
{{- $_ := include "imaging.mq" . -}}
{{- $_ := include "imaging.redis" . -}}
{{- end -}}

{{/*
The hospital's CA bundle (caBundle.*): a PEM file holding every CA the services must trust (the public
ones too: it replaces the image's default), mounted at /etc/imaging/ca/ca-bundle.crt and named in the
variables each client library reads: Python's ssl and httpx (SSL_CERT_FILE), requests (REQUESTS_CA_BUNDLE),
boto3 for the film bucket (AWS_CA_BUNDLE), libpq/asyncpg for sslmode=verify-* (PGSSLROOTCERT).
*/}}
{{- define "imaging.caBundleEnv" -}}
{{- if or .Values.caBundle.existingConfigMap .Values.caBundle.existingSecret }}
{{- range list "SSL_CERT_FILE" "REQUESTS_CA_BUNDLE" "AWS_CA_BUNDLE" "PGSSLROOTCERT" }}
- name: {{ . }}
  value: /etc/imaging/ca/ca-bundle.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "imaging.caBundleMount" -}}
{{- if or .Values.caBundle.existingConfigMap .Values.caBundle.existingSecret }}
- {name: ca-bundle, mountPath: /etc/imaging/ca, readOnly: true}
{{- end }}
{{- end -}}

{{- define "imaging.caBundleVolume" -}}
{{- $c := .Values.caBundle }}
{{- if $c.existingConfigMap }}
- name: ca-bundle
  configMap: {name: {{ $c.existingConfigMap | quote }}, items: [{key: {{ $c.key | quote }}, path: ca-bundle.crt}]}
{{- else if $c.existingSecret }}
- name: ca-bundle
  secret: {secretName: {{ $c.existingSecret | quote }}, defaultMode: 0444, items: [{key: {{ $c.key | quote }}, path: ca-bundle.crt}]}
{{- end }}
{{- end -}}

{{/* An operator-run image with the global registry override applied: "repo/name:tag" -> "<registry>/repo/name:tag". */}}
{{- define "imaging.registryImage" -}}
{{- if .global.imageRegistry -}}
{{- $parts := splitList "/" .image -}}
{{- if and (gt (len $parts) 1) (or (contains "." (first $parts)) (contains ":" (first $parts))) -}}
{{ .global.imageRegistry }}/{{ rest $parts | join "/" }}
{{- else -}}
{{ .global.imageRegistry }}/{{ .image }}
{{- end -}}
{{- else -}}
{{ .image }}
{{- end -}}
{{- end -}}

{{/* CloudNativePG barmanObjectStore: where the base backups and WAL go (or are restored from). */}}
{{- define "imaging.barmanStore" -}}
destinationPath: {{ .path | quote }}
{{- with .serverName }}
serverName: {{ . | quote }}
{{- end }}
{{- with .b.endpointURL }}
endpointURL: {{ . | quote }}
{{- end }}
{{- if .b.endpointCA.name }}
endpointCA: {name: {{ .b.endpointCA.name | quote }}, key: {{ .b.endpointCA.key | default "ca.crt" | quote }}}
{{- else if .ca.existingSecret }}
endpointCA: {name: {{ .ca.existingSecret | quote }}, key: {{ .ca.key | quote }}}
{{- end }}
s3Credentials:
  accessKeyId: {name: {{ required "cloudnativepg.backup.existingSecret is required (S3 credentials)" .b.existingSecret | quote }}, key: {{ .b.accessKeyIdKey | quote }}}
  secretAccessKey: {name: {{ .b.existingSecret | quote }}, key: {{ .b.secretAccessKeyKey | quote }}}
{{- end -}}

{{/* Labels of operator-run clusters: without part-of, which operators may copy onto their pods, so
the platform's default-deny NetworkPolicy never selects the database's or the broker's pods. */}}
{{- define "imaging.operatorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}


{{/*
Operator-run parts need their operator's CRDs: without them the API server refuses the Cluster or
RabbitmqCluster and, worse, a half-applied release waits for a database that never comes. So fail the
render early, naming what to install (.Capabilities.APIVersions: the live cluster's APIs on install and
upgrade, or the --api-versions given to `helm template`).
*/}}
{{- define "imaging.checkOperatorCrds" -}}
{{- if .Values.checkOperatorCrds -}}
{{- $apis := .Capabilities.APIVersions -}}
{{- if .Values.cloudnativepg.enabled -}}
{{- $need := list "postgresql.cnpg.io/v1/Cluster" -}}
{{- if .Values.cloudnativepg.backup.enabled }}{{ $need = append $need "postgresql.cnpg.io/v1/ScheduledBackup" }}{{ end -}}
{{- range $need -}}
{{- if not ($apis.Has .) -}}
{{- fail (printf "cloudnativepg.enabled=true needs the CloudNativePG operator, but this cluster does not serve %s: install the operator and its CRDs first (deploy/k8s/README.md, \"Operators\"), or use externalDatabase. Rendering offline: pass --api-versions %s" . .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.rabbitmqCluster.enabled (not ($apis.Has "rabbitmq.com/v1beta1/RabbitmqCluster")) -}}
{{- fail "rabbitmqCluster.enabled=true needs the RabbitMQ Cluster Operator, but this cluster does not serve rabbitmq.com/v1beta1/RabbitmqCluster: install the operator and its CRD first (deploy/k8s/README.md, \"Operators\"), or use externalRabbitmq. Rendering offline: pass --api-versions rabbitmq.com/v1beta1/RabbitmqCluster" -}}
{{- end -}}
{{- end -}}
{{- end -}}
