"""Webhook specifics against a real HTTPS receiver that verifies Standard Webhooks signatures."""

import asyncio

import pytest

from connectors.core import Outcome
from connectors.netguard import AllowList
from connectors.secrets import Secret
from connectors.webhook import WebhookConnector
from tests.integration.connectors.harnesses import LOOPBACK, WEBHOOK_SECRET
from tests.servers import WebhookServer
from tests.unit.connectors.deliveries import deliveries

NEW_SECRET = "whsec_QmFzZTY0U2VjcmV0Rm9yUm90YXRpb24xMjM0"


def with_server(tls, body, secrets=(WEBHOOK_SECRET,)):
    async def main():
        server = await WebhookServer(list(secrets), tls).start()
        try:
            return await body(server)
        finally:
            await server.stop()

    return asyncio.run(main())


def connector(server, tls, secret_values=(WEBHOOK_SECRET,), allow=LOOPBACK, path="hook"):
    return WebhookConnector(
        server.url(path), Secret("m1-hook", tuple(secret_values)), allow, tls.client_context(), timeout=1
    )


def test_rotation_signs_with_every_secret_so_either_side_may_switch_first(tls):
    async def body(server):
        hook = connector(server, tls, (NEW_SECRET, WEBHOOK_SECRET))
        await hook.open()
        results = await hook.send_batch(deliveries(2))
        server.secrets = [NEW_SECRET]
        results += await hook.send_batch(deliveries(2, start=2))
        server.secrets = ["whsec_" + "A" * 32]
        refused = await hook.send_batch(deliveries(1, start=4))
        await hook.close()
        return results, refused

    results, refused = with_server(tls, body)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert refused[0].outcome is Outcome.FAILED and refused[0].detail == "HTTP 401"


def test_a_retried_batch_keeps_its_webhook_id(tls):
    async def body(server):
        hook = connector(server, tls)
        await hook.open()
        batch = deliveries(3)
        await hook.send_batch(batch)
        await hook.send_batch(batch)
        await hook.send_batch(deliveries(3, start=3))
        await hook.close()
        return [d["webhook-id"] for d in server.received]

    ids = with_server(tls, body)
    assert ids[0] == ids[3] != ids[6]


def test_retry_after_is_passed_to_the_retry_module(tls):
    async def body(server):
        server.mode, server.retry_after = "retry", "42"
        hook = connector(server, tls)
        await hook.open()
        (result,) = await hook.send_batch(deliveries(1))
        await hook.close()
        return result

    result = with_server(tls, body)
    assert result.outcome is Outcome.RETRY and result.retry_after == 42.0 and result.detail == "HTTP 503"


def test_410_disables_the_endpoint_without_further_requests(tls):
    async def body(server):
        server.mode = "gone"
        hook = connector(server, tls)
        await hook.open()
        first = await hook.send_batch(deliveries(1))
        server.mode = "ok"
        second = await hook.send_batch(deliveries(1, start=1))
        await hook.close()
        return first, second, server.requests, hook.health()

    first, second, requests, health = with_server(tls, body)
    assert first[0].outcome is second[0].outcome is Outcome.FAILED
    assert second[0].detail == "HTTP 410: endpoint gone; disabled"
    assert requests == 1 and health["state"] == "disabled"


def test_redirects_are_refused_not_followed(tls):
    async def body(server):
        server.mode = "redirect"
        hook = connector(server, tls)
        await hook.open()
        (result,) = await hook.send_batch(deliveries(1))
        await hook.close()
        return result, server.requests

    result, requests = with_server(tls, body)
    assert result.outcome is Outcome.FAILED and "redirect" in result.detail and requests == 1


@pytest.mark.parametrize("allow", [AllowList(), AllowList.parse(["10.0.0.0/8"])])
def test_an_internal_endpoint_is_refused_before_any_request(tls, allow):
    async def body(server):
        hook = connector(server, tls, allow=allow)
        await hook.open()
        results = await hook.send_batch(deliveries(2))
        await hook.close()
        return results, server.requests

    results, requests = with_server(tls, body)
    assert requests == 0
    assert {r.outcome for r in results} == {Outcome.FAILED}
    assert "loopback address" in results[0].detail and "CWN_CONNECT_ALLOW_INTERNAL" in results[0].detail


def test_an_unverifiable_certificate_is_retried_not_ignored(tls):
    import ssl

    async def body(server):
        hook = WebhookConnector(
            server.url(), Secret("s", (WEBHOOK_SECRET,)), LOOPBACK, ssl.create_default_context(), timeout=1
        )
        await hook.open()
        (result,) = await hook.send_batch(deliveries(1))
        await hook.close()
        return result, server.received

    result, received = with_server(tls, body)
    assert result.outcome is Outcome.RETRY and "certificate" in result.detail.lower() and received == []


def test_only_https_urls_are_accepted():
    with pytest.raises(ValueError, match="https"):
        WebhookConnector("http://example.org/hook", None, AllowList())
