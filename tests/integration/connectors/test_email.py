"""E-mail digest specifics against aiosmtpd requiring STARTTLS."""

import asyncio

import orjson

from connectors.core import Outcome
from connectors.email import EmailConnector, Relay
from tests.servers import SmtpServer
from tests.unit.connectors.deliveries import deliveries, member_alert


def send(tls, batch, mode="ok", starttls=True, server_tls=True):
    server = SmtpServer(tls if server_tls else None).start()
    server.mode = mode
    try:
        relay = Relay(
            "127.0.0.1", server.port, "alerts@cwn.example", starttls, ssl_context=tls.client_context()
        )
        results = asyncio.run(EmailConnector(relay, "soc@m1.example", "Member One").send_batch(batch))
        return results, server.messages
    finally:
        server.stop()


def test_one_digest_per_batch_readable_and_machine_readable(tls):
    batch = deliveries(3, tlp="GREEN")
    batch[1] = batch[1].__class__("m1", "inside", member_alert(9, tlp="AMBER", severity="critical"))
    results, messages = send(tls, batch)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    ((recipients, message, over_tls),) = messages
    assert recipients == ["soc@m1.example"] and over_tls
    assert message["Subject"] == "[CWN] [TLP:AMBER] 3 alert(s) for Member One (highest: critical)"
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    text = text.decode()
    assert text.index("ET MALWARE beacon 9") < text.index("ET MALWARE beacon 0")
    assert "This message is TLP:AMBER" in text
    attached = next(p for p in message.walk() if p.get_filename() == "alerts.json")
    assert [d["key"] for d in orjson.loads(attached.get_payload(decode=True))] == [d.key for d in batch]


def test_temporary_refusals_are_retried_permanent_ones_are_not(tls):
    assert send(tls, deliveries(1), "tempfail")[0][0].outcome is Outcome.RETRY
    result = send(tls, deliveries(1), "permfail")[0][0]
    assert result.outcome is Outcome.FAILED and "550" in result.detail


def test_a_relay_that_cannot_starttls_is_not_used_in_clear(tls):
    results, messages = send(tls, deliveries(1), server_tls=False)
    assert results[0].outcome is not Outcome.DELIVERED and messages == []
    assert "STARTTLS" in results[0].detail or "starttls" in results[0].detail.lower()
