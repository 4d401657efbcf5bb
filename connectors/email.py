"""E-mail digests: a member's alerts of one interval in one message, over SMTP with STARTTLS.

The runner gives this connector batches that linger for the digest interval, so a member gets
at most one message per interval per target, however many alerts there were. The message has
a readable text part (one paragraph per alert, most severe first) and the alerts attached as
`alerts.json`, with the idempotency keys. It goes through the operator's SMTP relay; STARTTLS
is required unless the operator turns it off.

Classification: 4xx replies, timeouts and lost connections are retried; 5xx replies (a refused
recipient, a message refused as too large) fail at once; so does a relay that refuses the
credentials.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import orjson

from connectors.core import DELIVERED, Delivery, Outcome, Result, all_results
from pipeline.routing.tlp import TLP_ORDER

_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


@dataclass(frozen=True, slots=True)
class Relay:
    """The operator's SMTP relay."""

    host: str
    port: int
    sender: str
    starttls: bool = True
    username: str = ""
    password: str = ""
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"Relay({self.host}:{self.port}, starttls={self.starttls})"


def digest(batch: Sequence[Delivery], member_name: str, sender: str, recipient: str) -> EmailMessage:
    """The digest message for one member: text for people, JSON for their tools."""
    alerts = sorted(batch, key=lambda d: (_ORDER.get(d.alert.get("severity") or "", 5), d.key))
    worst = alerts[0].alert.get("severity", "info") if alerts else "info"
    labels = (d.alert.get("tlp", "CLEAR") for d in batch)
    strictest = max(labels, key=lambda label: TLP_ORDER.get(label, 0), default="CLEAR")
    message = EmailMessage()
    message["Subject"] = f"[CWN] [TLP:{strictest}] {len(batch)} alert(s) for {member_name} (highest: {worst})"
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = [
        f"The CWN alert pipeline has {len(batch)} alert(s) for {member_name}.",
        f"This message is TLP:{strictest}: share it accordingly.",
        "",
    ]
    for n, delivery in enumerate(alerts, 1):
        lines += _paragraph(n, delivery)
    lines += ["The alerts are attached as alerts.json, with their idempotency keys."]
    message.set_content("\n".join(lines))
    attachment = orjson.dumps(
        [{"key": d.key, "rule": d.rule, "alert": d.alert} for d in batch], option=orjson.OPT_INDENT_2
    )
    message.add_attachment(attachment, maintype="application", subtype="json", filename="alerts.json")
    return message


def _paragraph(n: int, delivery: Delivery) -> list[str]:
    alert = delivery.alert
    source, destination = alert.get("source") or {}, alert.get("destination") or {}
    where = ", ".join(
        f"{side} {value}"
        for side, endpoint in (("source", source), ("destination", destination))
        for value in (endpoint.get("ip") or endpoint.get("fqdn") or endpoint.get("url"),)
        if value
    )
    lines = [
        f"{n}. [{str(alert.get('severity', '')).upper()}] {alert.get('identifier') or alert.get('type')}",
        f"   {alert.get('taxonomy')}/{alert.get('type')}, TLP:{alert.get('tlp')}, "
        f"seen {alert.get('time_observation')}" + (f", {where}" if where else ""),
    ]
    indicators = alert.get("indicators") or []
    if indicators:
        shown = ", ".join(f"{i['type']} {i['value']}" for i in indicators[:5])
        more = f" and {len(indicators) - 5} more" if len(indicators) > 5 else ""
        lines.append(f"   indicators: {shown}{more}")
    if alert.get("description"):
        lines.append(f"   {str(alert['description'])[:500]}")
    lines.append(f"   id {alert.get('id')}")
    return [*lines, ""]


def classify(exc: Exception) -> Result:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(400 <= c < 500 for c in codes):
            return Result(Outcome.RETRY, f"recipient deferred: {codes}")
        return Result(Outcome.FAILED, f"recipient refused: {codes}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Result(Outcome.FAILED, f"relay refused the credentials ({exc.code})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        outcome = Outcome.RETRY if 400 <= exc.code < 500 else Outcome.FAILED
        return Result(outcome, f"SMTP {exc.code}: {exc.message[:200]}")
    return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300])


class EmailConnector:
    """Sends one member target its digests."""

    name = "email"

    def __init__(self, relay: Relay, recipient: str, member_name: str) -> None:
        self._relay = relay
        self._recipient = recipient
        self._member_name = member_name
        self._sent = 0

    async def open(self) -> None:
        return None

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        relay = self._relay
        message = digest(batch, self._member_name, relay.sender, self._recipient)
        try:
            await aiosmtplib.send(
                message,
                hostname=relay.host,
                port=relay.port,
                start_tls=relay.starttls,
                username=relay.username or None,
                password=relay.password or None,
                tls_context=relay.ssl_context,
                timeout=relay.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return all_results(batch, classify(exc))
        self._sent += len(batch)
        return all_results(batch, DELIVERED)

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"connector": self.name, "endpoint": self._recipient, "delivered": self._sent}
