"""How an alert is written for a member's SIEM: CEF lines and RFC 5424 syslog frames.

CEF follows ArcSight's rules (`\\|` and `\\\\` escaped in the header; `\\=`, `\\\\`, `\\n`,
`\\r` in extension values), so the pipeline's own CEF parser reads these lines back to the same
observables. Syslog messages are RFC 5424 with octet-counting framing (RFC 6587 / 5425): the
frame is `<length> <message>`, so any payload, newlines included, is carried intact.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from connectors.core import Delivery

#: RFC 5424 severities (2 critical .. 6 informational) and CEF's 0-10 scale, per alert severity.
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3, "info": 1}
LOCAL0 = 16
#: The private enterprise number reserved for documentation (RFC 5612) names our SD-ID.
SD_ID = "cwn@32473"
VENDOR, PRODUCT = "CWN", "alert-pipeline"


def _header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _ext(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def _epoch_ms(stamp: str | None) -> str | None:
    if not stamp:
        return None
    return str(int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000))


def cef(delivery: Delivery, version: str = "1") -> str:
    """The alert as one CEF:0 line (no syslog header)."""
    alert = delivery.alert
    source, destination = alert.get("source") or {}, alert.get("destination") or {}
    protocol, malware = alert.get("protocol") or {}, alert.get("malware") or {}
    feed = alert.get("feed") or {}
    hashes = malware.get("hashes") or {}
    fields: dict[str, Any] = {
        "rt": _epoch_ms(alert.get("time_observation")),
        "cat": alert.get("type"),
        "externalId": alert.get("id"),
        "src" if ":" not in str(source.get("ip") or "") else "c6a2": source.get("ip"),
        "spt": source.get("port"),
        "shost": source.get("fqdn"),
        "dst" if ":" not in str(destination.get("ip") or "") else "c6a3": destination.get("ip"),
        "dpt": destination.get("port"),
        "dhost": destination.get("fqdn"),
        "request": destination.get("url"),
        "proto": (protocol.get("transport") or "").upper() or None,
        "app": protocol.get("application"),
        "fileHash": hashes.get("sha256") or hashes.get("sha1") or hashes.get("md5"),
        "cnt": alert.get("count"),
        "msg": alert.get("description"),
        "cs1Label": "tlp",
        "cs1": alert.get("tlp"),
        "cs2Label": "feed",
        "cs2": feed.get("name"),
        "cs3Label": "idempotencyKey",
        "cs3": delivery.key,
        "cs4Label": "taxonomy",
        "cs4": alert.get("taxonomy"),
        "cs5Label": "rule",
        "cs5": delivery.rule,
    }
    header = [
        "CEF:0",
        VENDOR,
        PRODUCT,
        version,
        f"{alert.get('taxonomy')}/{alert.get('type')}",
        alert.get("identifier") or alert.get("type") or "alert",
        CEF_SEVERITY.get(alert.get("severity") or "", 5),
    ]
    extension = " ".join(f"{k}={_ext(v)}" for k, v in fields.items() if v not in (None, ""))
    return "|".join(_header(h) if i else str(h) for i, h in enumerate(header)) + "|" + extension


def rfc5424(
    delivery: Delivery, payload: str, hostname: str | None = None, now: datetime | None = None
) -> bytes:
    """One RFC 5424 message: PRI, version, time, host, `cwn`, `alert`, structured data, payload."""
    alert = delivery.alert
    pri = LOCAL0 * 8 + SYSLOG_SEVERITY.get(alert.get("severity") or "", 5)
    stamp = (now.isoformat().replace("+00:00", "Z") if now else None) or (
        alert.get("time_observation") or "-"
    )
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "_")
    params = {"key": delivery.key, "rule": delivery.rule, "tlp": alert.get("tlp", "")}
    sd = "[" + SD_ID + "".join(f' {k}="{_sd(v)}"' for k, v in params.items()) + "]"
    msg_id = "alert"
    return f"<{pri}>1 {stamp} {host} cwn - {msg_id} {sd} ".encode() + b"\xef\xbb\xbf" + payload.encode()


def _sd(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def frame(message: bytes) -> bytes:
    """Octet-counting framing: `<length> <message>`."""
    return b"%d %s" % (len(message), message)
