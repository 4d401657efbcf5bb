import asyncio
import logging
import ssl
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from pipeline.settings import Settings
from pipeline.writer_process import MAX_FRAME, Connection, ProcessProducer, frame, read_frame

records = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=40),
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=600),
        st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=3),
    ),
    max_size=50,
)


def read_all(data: bytes) -> list[object]:
    async def run() -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out = []
        while True:
            try:
                out.append(await read_frame(reader))
            except asyncio.IncompleteReadError:
                return out

    return asyncio.run(run())


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2**40), records), max_size=5))
def test_frames_read_back_in_order_as_written(batches):
    data = b"".join(frame(batch) for batch in batches)
    assert read_all(data) == batches


def test_a_value_shared_by_many_records_travels_once():
    value = b"x" * 5000
    batch = [(f"cwn.deliver.m{i}", b"alert-id", value, [("cwn.rule", b"sector")]) for i in range(40)]
    assert len(frame((1, batch))) < 2 * len(value)


def test_a_frame_announcing_more_than_the_limit_is_refused_unread():
    with pytest.raises(ValueError, match="over the"):
        read_all(struct.pack("!I", MAX_FRAME + 1) + b"\0" * 10)


def test_a_truncated_frame_is_the_end_of_the_stream():
    assert read_all(frame((1, []))[:-2]) == []


def test_plaintext_connection_needs_no_tls_or_sasl():
    config = Connection.of(Settings(bootstrap="k1:9092,k2:9092")).aiokafka()
    assert config == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_connection_carries_credentials_and_a_tls_context():
    settings = Settings(
        bootstrap="k1:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="cwn-worker",
        sasl_password=SecretStr("s3cret"),
    )
    connection = Connection.of(settings)
    assert "s3cret" not in repr(connection), "the password stays out of logs"
    config = connection.aiokafka()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("cwn-worker", "s3cret")
    assert isinstance(config["ssl_context"], ssl.SSLContext)


def test_a_writer_that_cannot_start_refuses_every_batch():
    """No broker at the address: the child ends, and each batch, before and after, comes back
    refused whole (the agent then ends the worker without committing it)."""

    async def run() -> tuple[list, list]:
        producer = ProcessProducer(Settings(bootstrap="127.0.0.1:1"))
        try:
            assert producer.pid is None
            batch = [("cwn.deliver.m1", b"k1", b"v1", []), ("cwn.deliver.m2", b"k2", b"v2", [])]
            first = await asyncio.wait_for(await producer.send_batch(batch), 60)
            assert producer.pid is None  # ended: its metrics are no longer exported
            later = await asyncio.wait_for(await producer.send_batch(batch[:1]), 60)
            return first, later
        finally:
            producer.close(timeout=10)

    first, later = asyncio.run(run())
    assert [(r.topic, r.key) for r in first] == [("cwn.deliver.m1", b"k1"), ("cwn.deliver.m2", b"k2")]
    assert "writer process ended" in str(first[0].error)
    assert [(r.topic, r.key) for r in later] == [("cwn.deliver.m1", b"k1")]


def test_batches_sent_while_the_writer_starts_share_one_child(caplog):
    async def run() -> tuple[list, list]:
        producer = ProcessProducer(Settings(bootstrap="127.0.0.1:1"))
        try:
            first, second = await asyncio.gather(
                producer.send_batch([("t", b"a", b"v", [])]), producer.send_batch([("t", b"b", b"v", [])])
            )
            return await asyncio.wait_for(first, 60), await asyncio.wait_for(second, 60)
        finally:
            producer.close(timeout=10)

    with caplog.at_level(logging.INFO, logger="pipeline.writer_process"):
        first, second = asyncio.run(run())
    assert sum("writer process started" in r.getMessage() for r in caplog.records) == 1
    assert [r.key for r in first] == [b"a"] and [r.key for r in second] == [b"b"]
