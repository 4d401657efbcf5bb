"""The connector kinds a runner can serve, and how each builds a connector for a target.

A kind holds what its connectors share (the TAXII store and server, the SMTP relay, TLS
settings) and turns one member target from the directory into one connector, checking the
target's configuration first: a bad target raises ValueError naming the member, the target
and the problem, at start-up or when the directory changes, never at send time.
"""

from __future__ import annotations

import re
import ssl
from typing import Protocol

from connectors.core import Connector
from connectors.email import EmailConnector, Relay
from connectors.file import FileConnector, resolve_under
from connectors.secrets import Secret, SecretMissing, SecretStore
from connectors.settings import ConnectSettings
from connectors.syslog import SyslogConnector
from connectors.taxii import Credentials, Store, TaxiiConnector, TaxiiServer
from connectors.webhook import WebhookConnector
from pipeline.directory import Member, Target


class Kind(Protocol):
    """One type of delivery target."""

    name: str
    #: How long a batch may wait to fill, in seconds (the digest interval for e-mail).
    linger: float

    async def start(self) -> None: ...

    def connector(self, member: Member, target: Target) -> Connector: ...

    def forget(self, member: Member, target: Target) -> None: ...

    async def stop(self) -> None: ...


def client_tls(settings: ConnectSettings) -> ssl.SSLContext:
    """The system's trusted CAs, plus the operator's own when it names a file."""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def _secret(secrets: SecretStore, member: Member, target: Target, required: bool) -> Secret | None:
    if target.secret_ref is None:
        if required:
            raise ValueError(
                f"member {member.id} target {target.id}: a {target.type} target needs secret_ref"
            )
        return None
    try:
        return secrets.get(target.secret_ref)
    except SecretMissing as exc:
        raise ValueError(f"member {member.id} target {target.id}: {exc}") from None


class _Base:
    name = ""
    linger = 0.2

    def __init__(self, settings: ConnectSettings, secrets: SecretStore) -> None:
        self.settings = settings
        self.secrets = secrets
        self.linger = settings.linger_seconds
        # Built once: reading the CA file per target would be 1,152 reads at start-up.
        self.tls = client_tls(settings)

    async def start(self) -> None:
        return None

    def forget(self, member: Member, target: Target) -> None:
        return None

    async def stop(self) -> None:
        return None


class WebhookKind(_Base):
    """Signed JSON batches over HTTPS (Standard Webhooks)."""

    name = "webhook"

    def connector(self, member: Member, target: Target) -> Connector:
        secret = _secret(self.secrets, member, target, required=True)
        assert secret is not None
        for value in secret.values:
            if not re.fullmatch(r"(whsec_)?[A-Za-z0-9+/]{16,}={0,2}", value):
                raise ValueError(
                    f"member {member.id} target {target.id}: secret {target.secret_ref!r} is not a "
                    "Standard Webhooks secret (whsec_ followed by base64)"
                )
        return WebhookConnector(
            target.endpoint,
            secret,
            self.settings.allow,
            self.tls,
            self.settings.send_timeout_seconds,
        )


class SyslogKind(_Base):
    """RFC 5424 over TLS or TCP, JSON or CEF payloads."""

    name = "syslog"

    def connector(self, member: Member, target: Target) -> Connector:
        try:
            return SyslogConnector(
                target.endpoint,
                target.format,
                self.settings.allow,
                self.tls,
                self.settings.send_timeout_seconds,
            )
        except ValueError as exc:
            raise ValueError(f"member {member.id} target {target.id}: {exc}") from None


class EmailKind(_Base):
    """Digests per member per interval over SMTP with STARTTLS."""

    name = "email"

    def __init__(self, settings: ConnectSettings, secrets: SecretStore) -> None:
        super().__init__(settings, secrets)
        self.linger = settings.digest_seconds
        self.relay = Relay(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.smtp_starttls,
            settings.smtp_username,
            settings.smtp_password.get_secret_value(),
            self.tls,
            max(30.0, settings.send_timeout_seconds),
        )

    def connector(self, member: Member, target: Target) -> Connector:
        return EmailConnector(self.relay, target.endpoint, member.name)


class FileKind(_Base):
    """Rotating JSON-lines files for air-gapped transfer."""

    name = "file"

    def connector(self, member: Member, target: Target) -> Connector:
        try:
            directory = resolve_under(self.settings.file_root, target.endpoint)
        except ValueError as exc:
            raise ValueError(f"member {member.id} target {target.id}: {exc}") from None
        return FileConnector(
            directory,
            f"{member.id}.{target.id}",
            self.settings.file_max_bytes,
            self.settings.file_max_seconds,
        )


class TaxiiKind(_Base):
    """A TAXII 2.1 server with one collection per member.

    It serves the collections while it runs; its connectors only write to the store.
    """

    name = "taxii"

    def __init__(self, settings: ConnectSettings, secrets: SecretStore) -> None:
        super().__init__(settings, secrets)
        self.store = Store(settings.taxii_store)
        self.credentials = Credentials()
        self.server = TaxiiServer(self.store, self.credentials, settings.taxii_page_size)

    async def start(self) -> None:
        context = None
        if self.settings.taxii_cert_file is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.settings.taxii_cert_file), self.settings.taxii_key_file)
        await self.server.start(self.settings.taxii_host, self.settings.taxii_port, context)

    def connector(self, member: Member, target: Target) -> Connector:
        secret = _secret(self.secrets, member, target, required=True)
        assert secret is not None
        self.credentials.grant(member.id, member.name, secret)
        return TaxiiConnector(self.store, member.id)

    def forget(self, member: Member, target: Target) -> None:
        self.credentials.revoke(member.id)

    async def stop(self) -> None:
        await self.server.stop()
        self.store.close()


KINDS: dict[str, type[_Base]] = {
    kind.name: kind for kind in (WebhookKind, SyslogKind, EmailKind, TaxiiKind, FileKind)
}
