{{/* Names and labels shared by every template. */}}

{{- define "cwn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cwn.fullname" -}}
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

{{- define "cwn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cwn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cwn
{{- end -}}

{{- define "cwn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cwn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cwn.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "cwn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cwn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Environment every CWN process shares: Kafka access, namespace, topic layout, metrics.
     Call with (dict "root" $ "secret" "<per-component secret or empty>"). */}}
{{- define "cwn.env" -}}
{{- $root := .root -}}
{{- $k := $root.Values.kafka -}}
{{- $secret := default $k.sasl.existingSecret .secret -}}
- name: KAFKA_BOOTSTRAP
  value: {{ $k.bootstrap | quote }}
- name: CWN_NAMESPACE
  value: {{ $k.topicNamespace | quote }}
- name: CWN_PARTITIONS
  value: {{ $k.partitions | quote }}
- name: CWN_REPLICATION
  value: {{ $k.replication | quote }}
- name: CWN_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: CWN_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: CWN_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required with SASL" $secret }}
      key: {{ $k.sasl.usernameKey }}
- name: CWN_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- if and (hasSuffix "SSL" $k.securityProtocol) $k.tls.caSecret }}
- name: CWN_SSL_CA_FILE
  value: /var/run/cwn/kafka-ca/{{ $k.tls.caKey }}
{{- end }}
- name: CWN_METRICS_PORT
  value: {{ $root.Values.metrics.port | quote }}
- name: CWN_LOG_LEVEL
  value: {{ $root.Values.pipeline.logLevel | quote }}
- name: CWN_STATE_DIR
  value: /var/lib/cwn
{{- end -}}

{{- define "cwn.caVolume" -}}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
{{- end }}
{{- end -}}

{{- define "cwn.caMount" -}}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /var/run/cwn/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
