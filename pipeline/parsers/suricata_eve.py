"""Suricata EVE JSON: one event per line; `alert` events become alerts.

Other event types (flow, dns, http, tls, fileinfo, stats, ...) are skipped and counted: a sensor
that logs everything to one EVE file is normal and is not an error. The classification comes
from the rule's classtype text (Suricata's `classification.config`), the severity from the
rule's priority (1 highest) or, when an Emerging Threats rule carries it, its
`signature_severity` metadata.
"""

from __future__ import annotations

from typing import Any

from pipeline.alert import Alert
from pipeline.parsers.base import ParseContext, Parsed, Skip, build, each, integer, json_object, lines, text
from pipeline.rejected import Rejected

#: Suricata's default classification.config descriptions -> RSIT class/type.
CATEGORIES = {
    "a network trojan was detected": ("malicious-code", "infected-system"),
    "malware command and control activity detected": ("malicious-code", "infected-system"),
    "possible social engineering attempted": ("information-gathering", "social-engineering"),
    "detection of a network scan": ("information-gathering", "scanner"),
    "attempted information leak": ("information-gathering", "scanner"),
    "information leak": ("information-content-security", "data-leak"),
    "large scale information leak": ("information-content-security", "data-leak"),
    "attempted denial of service": ("availability", "dos"),
    "denial of service": ("availability", "dos"),
    "detection of a denial of service attack": ("availability", "dos"),
    "attempted administrator privilege gain": ("intrusion-attempts", "exploit"),
    "attempted user privilege gain": ("intrusion-attempts", "exploit"),
    "web application attack": ("intrusion-attempts", "exploit"),
    "executable code was detected": ("intrusion-attempts", "exploit"),
    "exploit kit activity detected": ("malicious-code", "malware-distribution"),
    "successful administrator privilege gain": ("intrusions", "privileged-account-compromise"),
    "successful user privilege gain": ("intrusions", "unprivileged-account-compromise"),
    "unsuccessful user privilege gain": ("intrusion-attempts", "brute-force"),
    "attempted login with suspicious username": ("intrusion-attempts", "brute-force"),
    "crypto currency mining activity detected": ("fraud", "unauthorised-use-of-resources"),
    "domain observed used for c2 detected": ("malicious-code", "c2-server"),
    "targeted malicious activity was detected": ("intrusion-attempts", "ids-alert"),
    "device retrieving external ip address detected": ("other", "undetermined"),
    "potential corporate privacy violation": (
        "information-content-security",
        "unauthorised-information-access",
    ),
    "potentially bad traffic": ("intrusion-attempts", "ids-alert"),
    "misc attack": ("intrusion-attempts", "ids-alert"),
    "misc activity": ("other", "undetermined"),
    "generic protocol command decode": ("other", "undetermined"),
    "not suspicious traffic": ("other", "undetermined"),
    "unknown traffic": ("other", "undetermined"),
}
_PRIORITY_SEVERITY = {1: "high", 2: "medium", 3: "low"}
_ET_SEVERITY = {"critical": "critical", "major": "high", "minor": "low", "informational": "info"}
_ET_CONFIDENCE = {"high": 85, "medium": 60, "low": 35}


def parse(payload: bytes, context: ParseContext) -> Parsed:
    """One EVE event per line; each `alert` event is one alert."""
    return each(lines(payload), lambda line: _event(json_object(line, "event"), context))


def _event(event: dict[str, Any], context: ParseContext) -> list[Alert]:
    kind = event.get("event_type")
    if kind != "alert":
        known = isinstance(kind, str) and kind in _KNOWN_TYPES
        raise Skip(f"eve event_type {kind}" if known else "eve event_type other")
    rule = event.get("alert")
    if not isinstance(rule, dict):
        raise Rejected("alert", "an alert event without its alert object")
    signature = text(rule.get("signature"), "alert.signature", 1024)
    if signature is None:
        raise Rejected("alert.signature", "missing")
    category = text(rule.get("category"), "alert.category") or ""
    taxonomy, kind = CATEGORIES.get(category.lower(), ("intrusion-attempts", "ids-alert"))
    metadata = rule.get("metadata") if isinstance(rule.get("metadata"), dict) else {}
    severity = _first(metadata, "signature_severity", _ET_SEVERITY) or _PRIORITY_SEVERITY.get(
        integer(rule.get("severity"), "alert.severity") or 0, "info"
    )
    app = text(event.get("app_proto"), "app_proto")
    extra = {
        key: str(value)
        for key, value in (
            ("sid", rule.get("signature_id")),
            ("gid", rule.get("gid")),
            ("rev", rule.get("rev")),
            ("action", rule.get("action")),
            ("category", category or None),
            ("flow_id", event.get("flow_id")),
            ("in_iface", event.get("in_iface")),
            ("community_id", event.get("community_id")),
            ("direction", event.get("direction")),
        )
        if value is not None and not isinstance(value, dict | list)
    }
    data: dict[str, Any] = {
        "time_observation": event.get("timestamp"),
        "time_source": event.get("timestamp"),
        "origin": "ids",
        "sensor": text(event.get("host"), "host", 256),
        "taxonomy": taxonomy,
        "type": kind,
        "identifier": signature,
        "severity": severity,
        "confidence": _first(metadata, "confidence", _ET_CONFIDENCE),
        "source": _endpoint(event, "src_ip", "src_port"),
        "destination": _endpoint(event, "dest_ip", "dest_port"),
        "protocol": {
            "transport": (text(event.get("proto"), "proto") or "").lower() or None,
            "application": app.lower() if app and app != "failed" else None,
        },
        # The host an inbound attack targets is the victim's, not an indicator; names are
        # indicators when the alert says the traffic is malware's, or when it is about a lookup.
        "indicators": _indicators(event) if taxonomy == "malicious-code" or app == "dns" else [],
        "extra": extra,
    }
    if data["time_observation"] is None:
        raise Rejected("timestamp", "missing")
    _application_details(event, data)
    return [build(data, context)]


_KNOWN_TYPES = frozenset(
    [
        "flow",
        "netflow",
        "dns",
        "http",
        "tls",
        "fileinfo",
        "stats",
        "anomaly",
        "drop",
        "smtp",
        "ssh",
        "smb",
        "nfs",
        "dhcp",
        "rdp",
        "sip",
        "krb5",
        "snmp",
        "mqtt",
        "http2",
        "quic",
        "ike",
        "dcerpc",
        "ftp",
        "ftp_data",
        "tftp",
        "pgsql",
        "rfb",
        "frame",
    ]
)


def _first(metadata: dict[str, Any], key: str, table: dict[str, Any]) -> Any:
    values = metadata.get(key)
    if isinstance(values, list) and values and isinstance(values[0], str):
        return table.get(values[0].strip().lower())
    return None


def _endpoint(event: dict[str, Any], ip_key: str, port_key: str) -> dict[str, Any] | None:
    ip = text(event.get(ip_key), ip_key, 64)
    if ip is None:
        return None
    return {"ip": ip, "port": integer(event.get(port_key), port_key, 0, 65535)}


def _indicators(event: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    http, tls, dns = (event.get(k) if isinstance(event.get(k), dict) else {} for k in ("http", "tls", "dns"))
    for kind, value in (
        ("domain", http.get("hostname")),
        ("domain", tls.get("sni")),
        ("domain", _dns_name(dns)),
    ):
        if isinstance(value, str) and value and not _is_ip(value):
            out.append({"type": kind, "value": value})
    return out


def _dns_name(dns: dict[str, Any]) -> Any:
    if dns.get("rrname"):
        return dns["rrname"]
    queries = dns.get("queries")
    if isinstance(queries, list) and queries and isinstance(queries[0], dict):
        return queries[0].get("rrname")
    return None


def _is_ip(value: str) -> bool:
    return value.replace(".", "").isdigit() or ":" in value


def _application_details(event: dict[str, Any], data: dict[str, Any]) -> None:
    """The HTTP URL and host of the flow become the destination's url and fqdn."""
    http = event.get("http") if isinstance(event.get("http"), dict) else {}
    host = http.get("hostname")
    if data["destination"] is not None and isinstance(host, str) and host and not _is_ip(host):
        data["destination"]["fqdn"] = host
        path = http.get("url")
        if isinstance(path, str) and path.startswith("/"):
            port = data["destination"].get("port")
            scheme = "https" if port == 443 else "http"
            data["destination"]["url"] = f"{scheme}://{host}{path}"[:4096]
    for key in ("http_user_agent", "http_method", "status"):
        if isinstance(http.get(key), str | int) and not isinstance(http.get(key), bool):
            data["extra"][f"http_{key.removeprefix('http_')}"] = str(http[key])[:1024]
    tls = event.get("tls") if isinstance(event.get("tls"), dict) else {}
    for key in ("subject", "issuerdn", "ja3s", "fingerprint"):
        if isinstance(tls.get(key), str):
            data["extra"][f"tls_{key}"] = tls[key][:1024]
