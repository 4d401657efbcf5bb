"""Any input to any parser gives alerts, located rejections or skips: never an exception that escapes.

Three kinds of input per format: arbitrary bytes; arbitrary JSON documents (for the JSON formats);
and the format's own sample files with random bytes changed, which reach far deeper into each
parser than random bytes do.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.feeds import FORMATS
from pipeline.parsers import PARSERS, Parsed
from pipeline.rejected import Rejected
from tests.unit.parsers.samples import SAMPLES, context, registry

#: One feed of each format from the example registry.
FEED_OF = {spec.format: spec.id for spec in reversed(list(registry()))}
FEED_OF["alert-avro"] = FEED_OF["alert-json"]  # a native feed may send either encoding
SAMPLE_FILES = {fmt: sorted(p for p in (SAMPLES / fmt).glob("*") if p.is_file()) for fmt in FORMATS}
CASES = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)


def check(fmt: str, payload: bytes) -> None:
    try:
        parsed = PARSERS[fmt](payload, context(FEED_OF[fmt]))
    except Rejected as rejected:
        assert rejected.field and rejected.reason
        return
    assert isinstance(parsed, Parsed)
    for rejected in parsed.rejected:
        assert rejected.field and rejected.reason and rejected.item
    for alert in parsed.alerts:
        assert alert["taxonomy"] and alert["type"] and alert["tlp"]


def test_every_format_has_a_feed_and_samples():
    assert set(FEED_OF) == set(FORMATS)
    for fmt in FORMATS:
        if fmt not in ("alert-json", "alert-avro"):
            assert SAMPLE_FILES[fmt], f"no sample files for {fmt}"


@pytest.mark.parametrize("fmt", FORMATS)
@CASES
@given(payload=st.binary(max_size=400))
def test_any_bytes(fmt, payload):
    check(fmt, payload)


@pytest.mark.parametrize("fmt", ["alert-json", "suricata-eve", "stix2", "misp", "intelmq"])
@CASES
@given(document=json_values)
def test_any_json_document(fmt, document):
    check(fmt, orjson.dumps(document))


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("alert-json", "alert-avro")])
@CASES
@given(data=st.data())
def test_sample_files_with_changed_bytes(fmt, data):
    path = data.draw(st.sampled_from(SAMPLE_FILES[fmt]))
    payload = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.sampled_from(b"\"'{}[]|=,:\\\n x0.-9aZ\x00\xff"))
    check(fmt, bytes(payload))


@pytest.mark.parametrize("fmt", ["suricata-eve", "stix2", "misp", "intelmq"])
@CASES
@given(data=st.data())
def test_sample_documents_with_changed_values(fmt, data):
    """Replace one value anywhere in a sample JSON document with any JSON value."""
    path = data.draw(st.sampled_from(SAMPLE_FILES[fmt]))
    lines = path.read_bytes().splitlines() if fmt in ("suricata-eve", "intelmq") else [path.read_bytes()]
    documents = [orjson.loads(line) for line in lines if line.strip().startswith((b"{", b"["))]
    document = data.draw(st.sampled_from(documents))
    slots = list(_slots(document))
    container, key = data.draw(st.sampled_from(slots))
    container[key] = data.draw(json_values)
    check(fmt, orjson.dumps(document))


def _slots(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _slots(value)


def test_shifted_samples_parse_alike_at_the_shifted_time():
    """The integration tests send samples moved to the present; moving must not change them."""
    from datetime import timedelta

    from pipeline.parsers import ParseContext
    from tests.unit.parsers.samples import NOW, shift_times

    delta = timedelta(days=3, hours=5, minutes=7)
    for fmt, paths in SAMPLE_FILES.items():
        for path in paths:
            ctx = context(FEED_OF[fmt])
            later = ParseContext.of(ctx.spec, NOW + delta) if ctx.spec else ctx
            before = PARSERS[fmt](path.read_bytes(), ctx)
            after = PARSERS[fmt](shift_times(path.read_bytes(), delta), later)
            assert [(r.item, r.field) for r in after.rejected] == [
                (r.item, r.field) for r in before.rejected
            ], path
            assert after.skipped == before.skipped, path
            assert [a["time_observation"] - delta for a in after.alerts] == [
                a["time_observation"] for a in before.alerts
            ], path
