"""Syslog delivery to a member's SIEM: RFC 5424 over TCP or TLS, octet-counted frames.

The endpoint is `host:port` or `tls://host:port` for TLS (RFC 5425; the default), and
`tcp://host:port` for plain TCP where the operator allows it. Each alert is one message whose
payload is the alert as JSON or as a CEF line. The connection is kept open between batches and
opened again after any error.

Syslog has no acknowledgement: a batch counts as delivered once written and flushed to the
connection (`drain`). A write that fails is retried on a new connection, so a receiver may see
a message twice; the idempotency key in the structured data lets it tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import orjson

from connectors.core import DELIVERED, Delivery, Outcome, Result, all_results
from connectors.formats import cef, frame, rfc5424
from connectors.netguard import AllowList, EndpointRefused, resolve


def parse_endpoint(endpoint: str) -> tuple[str, int, bool]:
    """(host, port, tls) from `[tls://|tcp://]host:port`; IPv6 hosts in brackets."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "tls", endpoint
    if scheme not in ("tls", "tcp"):
        raise ValueError(f"a syslog endpoint is [tls://|tcp://]host:port, got {endpoint[:64]!r}")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a syslog endpoint is [tls://|tcp://]host:port, got {endpoint[:64]!r}")
    return host, int(port), scheme == "tls"


class SyslogConnector:
    """Writes one member's alerts to its syslog receiver."""

    name = "syslog"

    def __init__(
        self,
        endpoint: str,
        payload: str,
        allow: AllowList,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        if payload not in ("json", "cef"):
            raise ValueError(f"a syslog target carries json or cef, not {payload!r}")
        self._host, self._port, tls = parse_endpoint(endpoint)
        self._endpoint = endpoint
        self._payload = payload
        self._allow = allow
        self._ssl = (ssl_context or ssl.create_default_context()) if tls else None
        self._timeout = timeout
        self._hostname = socket.gethostname() or "-"
        self._writer: asyncio.StreamWriter | None = None
        self._refused: str | None = None
        self._sent = 0

    async def open(self) -> None:
        return None

    async def _connect(self) -> asyncio.StreamWriter:
        addresses = await resolve(self._host, self._port, self._allow)
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                addresses[0],
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            ),
            self._timeout,
        )
        return writer

    def render(self, delivery: Delivery) -> bytes:
        text = cef(delivery) if self._payload == "cef" else orjson.dumps(delivery.alert).decode()
        return frame(rfc5424(delivery, text, self._hostname))

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        if self._refused:
            return all_results(batch, Result(Outcome.FAILED, self._refused))
        try:
            if self._writer is None:
                self._writer = await self._connect()
            self._writer.write(b"".join(self.render(d) for d in batch))
            await asyncio.wait_for(self._writer.drain(), self._timeout)
        except EndpointRefused as exc:
            self._refused = f"endpoint refused: {exc}"
            return all_results(batch, Result(Outcome.FAILED, self._refused))
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self._drop()
            return all_results(batch, Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300]))
        self._sent += len(batch)
        return all_results(batch, DELIVERED)

    async def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def close(self) -> None:
        await self._drop()

    def health(self) -> dict[str, Any]:
        state = "refused" if self._refused else "connected" if self._writer else "idle"
        return {"connector": self.name, "endpoint": self._endpoint, "state": state, "delivered": self._sent}
