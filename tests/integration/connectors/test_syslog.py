"""Syslog specifics: CEF payloads a SIEM can parse, and plain TCP where allowed."""

import asyncio

import pytest

from connectors.core import Outcome
from connectors.syslog import SyslogConnector, parse_endpoint
from pipeline.parsers.cef import parse
from tests.integration.connectors.harnesses import LOOPBACK
from tests.servers import SyslogServer
from tests.unit.connectors.deliveries import deliveries
from tests.unit.parsers.samples import context


def test_cef_payloads_over_tls_are_read_back_by_a_cef_parser(tls):
    async def main():
        server = await SyslogServer(tls).start()
        connector = SyslogConnector(f"localhost:{server.port}", "cef", LOOPBACK, tls.client_context())
        batch = deliveries(5, tlp="AMBER")
        results = await connector.send_batch(batch)
        await connector.close()
        await asyncio.sleep(0.1)
        await server.stop()
        return batch, results, server.messages

    batch, results, messages = asyncio.run(main())
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert len(messages) == 5
    for delivery, message in zip(batch, messages, strict=True):
        assert message.startswith(b"<131>1 ")
        line = message.split(b"\xef\xbb\xbf", 1)[1]
        (alert,) = parse(line, context("soc-partner/siem")).alerts
        assert alert["extra"]["idempotencyKey"] == delivery.key
        assert alert["source"]["ip"] == delivery.alert["source"]["ip"]


def test_plain_tcp_when_the_endpoint_says_so():
    async def main():
        server = await SyslogServer(None).start()
        connector = SyslogConnector(f"tcp://127.0.0.1:{server.port}", "json", LOOPBACK)
        results = await connector.send_batch(deliveries(2))
        await connector.close()
        await asyncio.sleep(0.1)
        await server.stop()
        return results, server.messages

    results, messages = asyncio.run(main())
    assert {r.outcome for r in results} == {Outcome.DELIVERED} and len(messages) == 2


def test_a_tls_endpoint_is_not_downgraded(tls):
    """A TLS target in front of a plain listener fails (retriably), never sends in clear."""

    async def main():
        server = await SyslogServer(None).start()
        connector = SyslogConnector(f"localhost:{server.port}", "json", LOOPBACK, tls.client_context(), 1)
        results = await connector.send_batch(deliveries(1))
        await connector.close()
        await server.stop()
        return results, server.messages

    results, messages = asyncio.run(main())
    assert results[0].outcome is Outcome.RETRY
    assert not any(b"cwn@32473" in m for m in messages)


def test_internal_syslog_endpoints_need_the_allow_list():
    from connectors.netguard import AllowList

    async def main():
        connector = SyslogConnector("tcp://127.0.0.1:1", "json", AllowList())
        return await connector.send_batch(deliveries(1))

    (result,) = asyncio.run(main())
    assert result.outcome is Outcome.FAILED and "loopback" in result.detail


@pytest.mark.parametrize(
    ("endpoint", "parsed"),
    [
        ("siem.example:6514", ("siem.example", 6514, True)),
        ("tls://[2001:db8::1]:6514", ("2001:db8::1", 6514, True)),
        ("tcp://10.0.0.1:514", ("10.0.0.1", 514, False)),
    ],
)
def test_endpoints(endpoint, parsed):
    assert parse_endpoint(endpoint) == parsed


@pytest.mark.parametrize("endpoint", ["udp://x:514", "x:0", "x", ":514", "x:99999"])
def test_bad_endpoints_are_named(endpoint):
    with pytest.raises(ValueError, match="host:port"):
        parse_endpoint(endpoint)
