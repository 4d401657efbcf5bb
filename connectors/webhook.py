"""Webhook delivery: signed JSON batches over HTTPS, per the Standard Webhooks scheme.

Each batch is one POST of `{"type": "cwn.alerts", "timestamp": ..., "data": {"deliveries":
[{"key", "rule", "alert"}, ...]}}` with `webhook-id`, `webhook-timestamp` and
`webhook-signature` (HMAC-SHA256 over `id.timestamp.body`, `v1,<base64>`); during a secret
rotation it carries one signature per secret, so the receiver may switch at its own pace. The
`webhook-id` is derived from the deliveries' idempotency keys, so a retried batch has the same
id and the receiver can drop the repeat.

Failures are classified here: 2xx delivered; 408, 425, 429 and 5xx retried (honouring
`Retry-After`), as are connection errors and timeouts; a redirect is refused (never followed,
so a member cannot point the network elsewhere); 410 Gone disables the endpoint for good, until
the connector is restarted with a changed directory; other 4xx fail at once. The host is
resolved once at open and refused when internal (see `netguard`), and requests go only to the
addresses checked then.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks.webhooks import Webhook

from connectors.core import DELIVERED, Delivery, Outcome, Result, all_results
from connectors.netguard import AllowList, EndpointRefused, resolve
from connectors.retry import parse_retry_after
from connectors.secrets import Secret

_RETRY_STATUS = frozenset({408, 425, 429})
USER_AGENT = "cwn-alert-pipeline"


class _Pinned(AbstractResolver):
    """Answers only with the addresses checked when the endpoint was opened."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self._host = host
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"{host} is not this endpoint's host")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


def message_id(batch: Sequence[Delivery]) -> str:
    """The same id for the same deliveries, so a retry is recognisable as one."""
    digest = hashlib.sha256("\n".join(d.key for d in batch).encode()).hexdigest()
    return f"msg_{digest[:32]}"


def body(batch: Sequence[Delivery], now: datetime) -> bytes:
    return orjson.dumps(
        {
            "type": "cwn.alerts",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"deliveries": [{"key": d.key, "rule": d.rule, "alert": d.alert} for d in batch]},
        }
    )


def sign(secret: Secret, msg_id: str, when: datetime, payload: bytes) -> str:
    """Space-separated `v1,<sig>` signatures, one per secret value (newest first)."""
    text = payload.decode()
    return " ".join(Webhook(value).sign(msg_id, when, text) for value in secret.values)


def classify(status: int, headers: Any) -> Result:
    """The outcome an HTTP status means for every delivery of the batch."""
    if 200 <= status < 300:
        return DELIVERED
    if 300 <= status < 400:
        where = headers.get("Location", "")[:200]
        return Result(Outcome.FAILED, f"HTTP {status}: redirect to {where!r} refused")
    if status == 410:
        return Result(Outcome.FAILED, "HTTP 410: endpoint gone; disabled")
    if status in _RETRY_STATUS or status >= 500:
        return Result(Outcome.RETRY, f"HTTP {status}", parse_retry_after(headers.get("Retry-After")))
    return Result(Outcome.FAILED, f"HTTP {status}")


class WebhookConnector:
    """POSTs batches to one member's webhook URL."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: Secret | None,
        allow: AllowList,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"a webhook endpoint must be an https:// URL, got {url[:64]!r}")
        self._url = url
        self._host = parts.hostname
        self._port = parts.port or 443
        self._secret = secret
        self._allow = allow
        self._ssl = ssl_context or ssl.create_default_context()
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._refused: str | None = None
        self._disabled: str | None = None
        self._sent = 0

    async def open(self) -> None:
        """Resolve and check the host once; a refusal fails every later send for good."""
        try:
            await self._connect()
        except EndpointRefused as exc:
            self._refused = f"endpoint refused: {exc}"
        except OSError:
            pass  # resolved again at the first send, which is retried while DNS is down

    async def _connect(self) -> None:
        addresses = await resolve(self._host, self._port, self._allow)
        connector = aiohttp.TCPConnector(resolver=_Pinned(self._host, addresses), ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": USER_AGENT},
        )

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        if self._disabled:
            return all_results(batch, Result(Outcome.FAILED, self._disabled))
        if self._session is None and self._refused is None:
            try:
                await self._connect()
            except EndpointRefused as exc:
                self._refused = f"endpoint refused: {exc}"
            except OSError as exc:
                return all_results(batch, Result(Outcome.RETRY, str(exc)))
        if self._refused:
            return all_results(batch, Result(Outcome.FAILED, self._refused))
        assert self._session is not None
        now = datetime.now(UTC)
        payload = body(batch, now)
        msg_id = message_id(batch)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
        }
        if self._secret is not None:
            headers["webhook-signature"] = sign(self._secret, msg_id, now, payload)
        try:
            async with self._session.post(
                self._url, data=payload, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                result = classify(response.status, response.headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return all_results(batch, Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300]))
        if response.status == 410:
            self._disabled = result.detail
        if result.outcome is Outcome.DELIVERED:
            self._sent += len(batch)
        return all_results(batch, result)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def health(self) -> dict[str, Any]:
        state = "disabled" if self._disabled else "refused" if self._refused else "ok"
        return {"connector": self.name, "endpoint": self._url, "state": state, "delivered": self._sent}
