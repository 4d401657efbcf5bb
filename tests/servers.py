"""Real servers for connector tests: HTTPS webhook receiver, SMTP with STARTTLS, TLS syslog.

Each runs on loopback with a certificate from a throwaway CA (trustme) and records what it
received through its real protocol, so tests check what a member's system would really see.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trustme
from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.demo.run import free_port


@dataclass
class Tls:
    """A CA and a server certificate for localhost and 127.0.0.1."""

    ca: trustme.CA
    server: Any
    ca_file: Path

    @classmethod
    def make(cls, directory: Path) -> Tls:
        ca = trustme.CA()
        ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        return cls(ca, ca.issue_cert("localhost", "127.0.0.1", "::1"), ca_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@dataclass
class WebhookServer:
    """Accepts signed batches; `mode` makes it fail: retry (503), gone, bad, redirect, hang."""

    secrets: list[str]
    tls: Tls
    mode: str = "ok"
    retry_after: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    requests: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> WebhookServer:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        # Requests left hanging on purpose are cut off at stop, not waited for.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str = "hook") -> str:
        return f"https://localhost:{self.port}/{path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        mode = self.paths.get(request.match_info["path"], self.mode)
        if mode == "hang":
            await asyncio.sleep(3600)
        body = await request.read()
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, dict(request.headers))
                verified = True
                break
            except WebhookVerificationError:
                continue
        if not verified:
            self.bad_signatures += 1
            return web.Response(status=401)
        if mode == "retry":
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=503, headers=headers)
        if mode == "gone":
            return web.Response(status=410)
        if mode == "bad":
            return web.Response(status=400)
        if mode == "redirect":
            return web.Response(status=302, headers={"Location": "https://169.254.169.254/latest"})
        payload = orjson.loads(body)
        for delivery in payload["data"]["deliveries"]:
            self.received.append(
                delivery | {"path": request.match_info["path"], "webhook-id": request.headers["webhook-id"]}
            )
        return web.Response(status=204)


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        mode = self.server.mode
        if mode == "tempfail":
            return "451 4.3.0 try again later"
        if mode == "permfail":
            return "550 5.1.1 mailbox unavailable"
        self.server.messages.append(
            (envelope.rcpt_tos, email.message_from_bytes(envelope.content), bool(session.ssl))
        )
        return "250 OK"


class SmtpServer:
    """aiosmtpd on loopback that requires STARTTLS (or, without `tls`, cannot offer it);
    `mode` ok, tempfail or permfail."""

    def __init__(self, tls: Tls | None) -> None:
        self.mode = "ok"
        self.messages: list[tuple[list[str], email.message.Message, bool]] = []
        self.controller = Controller(
            _SmtpHandler(self),
            hostname="127.0.0.1",
            port=free_port(),
            tls_context=tls.server_context() if tls else None,
            require_starttls=tls is not None,
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()


class SyslogServer:
    """A TLS syslog receiver that parses octet-counted RFC 5424 frames."""

    def __init__(self, tls: Tls | None) -> None:
        self.tls = tls
        self.messages: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> SyslogServer:
        context = self.tls.server_context() if self.tls else None
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.messages.append(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
