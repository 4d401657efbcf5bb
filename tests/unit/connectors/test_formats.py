from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from connectors.core import Delivery
from connectors.formats import cef, frame, rfc5424
from pipeline.parsers.cef import parse, split_extension, split_header
from tests.unit.connectors.deliveries import member_alert
from tests.unit.parsers.samples import context

awkward = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)


def test_cef_reads_back_through_the_pipelines_own_parser():
    delivery = Delivery("m1", "inside", member_alert(3, tlp="AMBER"))
    line = cef(delivery)
    parsed = parse(line.encode(), context("soc-partner/siem"))
    assert not parsed.rejected, parsed.rejected
    (alert,) = parsed.alerts
    original = delivery.alert
    assert alert["source"]["ip"] == original["source"]["ip"]
    assert alert["source"]["port"] == 443
    assert alert["identifier"] == original["identifier"]
    assert alert["severity"] == "high"
    assert alert["description"] == original["description"]
    assert alert["time_observation"] == datetime.fromisoformat(original["time_observation"])
    assert alert["extra"]["idempotencyKey"] == delivery.key
    assert alert["extra"]["tlp"] == "AMBER"


@example(name="0", message=" 0")
@given(awkward, awkward)
def test_cef_escaping_keeps_any_name_and_message_intact(name, message):
    alert = member_alert(1) | {"identifier": name, "description": message}
    header, extension = split_header(cef(Delivery("m1", "r", alert)))
    assert header[5] == name.replace("\n", " ").replace("\r", " ")
    # A CEF extension value ends where the next key begins, so trailing blanks cannot survive.
    assert split_extension(extension)["msg"] == message.rstrip()


def test_rfc5424_frame_is_octet_counted_with_structured_data():
    delivery = Delivery("m1", "subscription:s1", member_alert(1, tlp="GREEN"))
    message = rfc5424(delivery, "payload\nwith newline", "sensor-1", datetime(2026, 11, 29, tzinfo=UTC))
    framed = frame(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message)
    assert message.startswith(b'<131>1 2026-11-29T00:00:00Z sensor-1 cwn - alert [cwn@32473 key="')
    assert b'rule="subscription:s1" tlp="GREEN"]' in message
    assert message.endswith(b"\xef\xbb\xbfpayload\nwith newline")


def test_structured_data_values_are_escaped():
    alert = member_alert(1)
    message = rfc5424(Delivery('m"1]', "r\\", alert), "x", "h")
    assert b'key="' + alert["id"].encode() + b':m\\"1\\]"' in message
    assert b'rule="r\\\\"' in message
