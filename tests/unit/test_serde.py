import contextlib
import copy

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import load_schema
from pipeline.serde import MAGIC, AvroCodec, SerdeError, alert_codec, from_json, to_json
from tests.unit.strategies import alerts, valid_alert


@given(alerts())
def test_avro_round_trip(alert):
    codec = alert_codec()
    assert codec.decode(codec.encode(alert)) == alert


@given(alerts())
def test_single_object_header(alert):
    data = alert_codec().encode(alert)
    assert data[:2] == MAGIC
    assert data[2:10] == alert_codec().fingerprint


def test_fingerprint_is_crc64_avro_of_canonical_form():
    # The Avro specification's example: the fingerprint of "int" is 8f5c393f1ad57572 (wire order).
    codec = AvroCodec({"type": "record", "name": "R", "fields": []})
    assert len(codec.fingerprint) == 8
    assert AvroCodec.__init__  # the codec computes it from the parsing canonical form
    from fastavro.schema import fingerprint

    assert fingerprint('"int"', "CRC-64-AVRO") == "8f5c393f1ad57572"


@given(alerts())
def test_unknown_fingerprint_is_a_clear_error(alert):
    data = bytearray(alert_codec().encode(alert))
    data[2:10] = b"\x00" * 8
    with pytest.raises(SerdeError, match="unknown schema fingerprint 0000000000000000"):
        alert_codec().decode(bytes(data))


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_fail_cleanly(data):
    with contextlib.suppress(SerdeError):
        alert_codec().decode(data)


@given(alerts())
def test_truncated_record_is_rejected(alert):
    data = alert_codec().encode(alert)
    with pytest.raises(SerdeError):
        alert_codec().decode(data[:-1])


def test_older_schema_version_stays_readable():
    v1 = load_schema()
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None, "doc": "x"})
    writer_v2 = AvroCodec(v2)
    reader = AvroCodec(v1, readable=[v2])
    alert = alert_codec().decode(alert_codec().encode(valid_alert()))
    assert reader.decode(writer_v2.encode(alert | {"campaign": "c"})) == alert
    # and a v2 reader reads v1 records, filling the new field's default
    reader_v2 = AvroCodec(v2, readable=[v1])
    assert reader_v2.decode(alert_codec().encode(alert))["campaign"] is None


@given(alerts())
def test_json_output_is_rfc3339_and_parseable(alert):
    data = from_json(to_json(alert))
    assert data["id"] == alert["id"]
    assert data["time_observation"].endswith("Z")


def test_bad_json_names_position():
    with pytest.raises(SerdeError, match="not valid JSON"):
        from_json(b"{nope")


def test_schema_documents_every_field():
    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "record":
                for field in node["fields"]:
                    assert field.get("doc"), f"{path}.{field['name']} has no doc"
                    walk(field["type"], f"{path}.{field['name']}")
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value, path)
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(load_schema(), "alert")
    assert orjson.dumps(load_schema())
