"""One harness per connector kind: a real server, a connector pointed at it, and what the
server really received. The conformance suite runs the same cases over every harness."""

from __future__ import annotations

import asyncio
import email.message
from pathlib import Path
from typing import Any

import orjson
from taxii2client.common import _HTTPConnection
from taxii2client.v21 import Collection

from connectors.email import EmailConnector, Relay
from connectors.file import FileConnector
from connectors.netguard import AllowList
from connectors.secrets import Secret
from connectors.syslog import SyslogConnector
from connectors.taxii import Credentials, Store, TaxiiConnector, TaxiiServer, collection_id
from connectors.webhook import WebhookConnector
from tests.servers import SmtpServer, SyslogServer, Tls, WebhookServer

LOOPBACK = AllowList.parse(["127.0.0.0/8", "::1/128"])
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TAXII_PASSWORD = "taxii-password-of-m1"


class Harness:
    name = ""
    #: Secret values that must never appear in a log line.
    secrets: tuple[str, ...] = ()
    #: Whether the server can refuse for good (a permanent failure), not only for now.
    has_fatal = False

    def __init__(self, tls: Tls, tmp: Path) -> None:
        self.tls = tls
        self.tmp = tmp

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def connector(self) -> Any: ...

    async def received(self) -> list[str]:
        """Idempotency keys of what the server holds, in arrival order."""
        raise NotImplementedError

    async def fail(self) -> None:
        """Make the next sends fail in a way worth retrying."""

    async def fatal(self) -> None:
        """Make the next sends fail for good."""

    async def recover(self) -> None: ...


class WebhookHarness(Harness):
    name = "webhook"
    secrets = (WEBHOOK_SECRET,)
    has_fatal = True

    async def start(self) -> None:
        self.server = await WebhookServer([WEBHOOK_SECRET], self.tls).start()

    async def stop(self) -> None:
        await self.server.stop()

    def connector(self) -> WebhookConnector:
        secret = Secret("m1-hook", (WEBHOOK_SECRET,))
        return WebhookConnector(self.server.url(), secret, LOOPBACK, self.tls.client_context(), timeout=2)

    async def received(self) -> list[str]:
        return [d["key"] for d in self.server.received]

    async def fail(self) -> None:
        self.server.mode = "retry"

    async def fatal(self) -> None:
        self.server.mode = "bad"

    async def recover(self) -> None:
        self.server.mode = "ok"


class SyslogHarness(Harness):
    name = "syslog"

    async def start(self) -> None:
        self.server = await SyslogServer(self.tls).start()

    async def stop(self) -> None:
        await self.server.stop()

    def connector(self) -> SyslogConnector:
        return SyslogConnector(
            f"tls://localhost:{self.server.port}", "json", LOOPBACK, self.tls.client_context(), timeout=2
        )

    async def received(self) -> list[str]:
        await asyncio.sleep(0.05)  # the listener reads what the connection already carried
        keys = []
        for message in self.server.messages:
            payload = message.split(b"\xef\xbb\xbf", 1)[1]
            alert = orjson.loads(payload)
            member = message.split(b'key="', 1)[1].split(b'"', 1)[0].decode().rpartition(":")[2]
            keys.append(f"{alert['id']}:{member}")
        return keys

    async def fail(self) -> None:
        await self.server.stop()

    async def recover(self) -> None:
        await self.server.start(self.server.port)


class EmailHarness(Harness):
    name = "email"
    secrets = ("smtp-relay-password",)
    has_fatal = True

    async def start(self) -> None:
        self.server = SmtpServer(self.tls).start()

    async def stop(self) -> None:
        self.server.stop()

    def connector(self) -> EmailConnector:
        relay = Relay(
            "127.0.0.1",
            self.server.port,
            "alerts@cwn.example",
            starttls=True,
            ssl_context=self.tls.client_context(),
            timeout=5,
        )
        return EmailConnector(relay, "soc@member-one.example", "Member One")

    def messages(self) -> list[email.message.Message]:
        return [message for _, message, _ in self.server.messages]

    async def received(self) -> list[str]:
        keys = []
        for message in self.messages():
            for part in message.walk():
                if part.get_filename() == "alerts.json":
                    keys += [d["key"] for d in orjson.loads(part.get_payload(decode=True))]
        return keys

    async def fail(self) -> None:
        self.server.mode = "tempfail"

    async def fatal(self) -> None:
        self.server.mode = "permfail"

    async def recover(self) -> None:
        self.server.mode = "ok"


class TaxiiHarness(Harness):
    name = "taxii"
    secrets = (TAXII_PASSWORD,)

    async def start(self) -> None:
        self.path = self.tmp / "taxii.sqlite"
        self.store = Store(self.path)
        self.credentials = Credentials()
        self.credentials.grant("m1", "Member One", Secret("m1-taxii", (TAXII_PASSWORD,)))
        self.server = TaxiiServer(self.store, self.credentials, page_size=100)
        await self.server.start("127.0.0.1", 0, self.tls.server_context())

    async def stop(self) -> None:
        await self.server.stop()
        self.store.close()

    def connector(self) -> TaxiiConnector:
        return TaxiiConnector(self.store, "m1")

    def collection(self, member: str = "m1", password: str = TAXII_PASSWORD) -> Collection:
        url = f"https://localhost:{self.server.port}/cwn/collections/{collection_id(member)}/"
        conn = _HTTPConnection("m1", password, verify=str(self.tls.ca_file), version="2.1")
        # requests lets REQUESTS_CA_BUNDLE override a session's own CA file; ignore the environment.
        conn.session.trust_env = False
        return Collection(url, conn=conn)

    async def objects(self, **filters: Any) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            from taxii2client.v21 import as_pages

            out: list[dict[str, Any]] = []
            for page in as_pages(self.collection().get_objects, per_request=100, **filters):
                out += page.get("objects", [])
            return out

        return await asyncio.to_thread(read)

    async def received(self) -> list[str]:
        return [o["x_cwn_idempotency_key"] for o in await self.objects() if o["type"] != "identity"]

    async def fail(self) -> None:
        self.store._db.execute("ALTER TABLE objects RENAME TO objects_away")

    async def recover(self) -> None:
        self.store._db.execute("ALTER TABLE objects_away RENAME TO objects")


class FileHarness(Harness):
    name = "file"

    async def start(self) -> None:
        self.directory = self.tmp / "outbox" / "m1"

    def connector(self) -> FileConnector:
        return FileConnector(self.directory, "m1.file", max_bytes=10_000_000, max_seconds=3600)

    async def received(self) -> list[str]:
        keys = []
        for path in sorted(self.directory.glob("m1.file*")):
            keys += [orjson.loads(line)["key"] for line in path.read_bytes().splitlines()]
        return keys

    async def fail(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        if self.directory.exists():
            for path in self.directory.iterdir():
                path.unlink()
            self.directory.rmdir()
        self.directory.write_text("a file where the directory should be")

    async def recover(self) -> None:
        self.directory.unlink()


HARNESSES = [WebhookHarness, SyslogHarness, EmailHarness, TaxiiHarness, FileHarness]


def run_with(harness_class: type[Harness], tls: Tls, tmp: Path, body: Any) -> Any:
    """Start the harness's server, run `body(harness)` on its event loop, stop the server."""

    async def main() -> Any:
        harness = harness_class(tls, tmp)
        await harness.start()
        try:
            return await body(harness)
        finally:
            await harness.stop()

    return asyncio.run(main())
