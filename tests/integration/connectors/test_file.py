"""File specifics: rotation into complete files, and targets kept under the operator's root."""

import asyncio

import orjson
import pytest

from connectors.file import FileConnector, resolve_under
from tests.unit.connectors.deliveries import deliveries


def test_rotation_closes_complete_files_and_loses_no_line(tmp_path):
    connector = FileConnector(tmp_path / "m1", "m1.t1", max_bytes=4096, max_seconds=3600)
    batch = deliveries(30)

    async def main():
        await connector.open()
        for i in range(0, 30, 3):
            await connector.send_batch(batch[i : i + 3])

    asyncio.run(main())
    done = sorted((tmp_path / "m1").glob("m1.t1.*.jsonl"))
    assert len(done) >= 2
    lines = [orjson.loads(line)["key"] for path in done for line in path.read_bytes().splitlines()]
    part = tmp_path / "m1" / "m1.t1.jsonl.part"
    if part.exists():
        lines += [orjson.loads(line)["key"] for line in part.read_bytes().splitlines()]
    assert lines == [d.key for d in batch]


def test_age_rotation(tmp_path):
    connector = FileConnector(tmp_path, "m1.t1", max_bytes=10**9, max_seconds=1e-9)
    asyncio.run(connector.send_batch(deliveries(1)))
    assert len(list(tmp_path.glob("m1.t1.*.jsonl"))) == 1 and not connector.current.exists()


@pytest.mark.parametrize("endpoint", ["../etc", "m1/../../x", "/../../root"])
def test_a_target_cannot_leave_the_file_root(tmp_path, endpoint):
    with pytest.raises(ValueError, match="must stay under"):
        resolve_under(tmp_path / "outbox", endpoint)


def test_absolute_looking_endpoints_stay_under_the_root(tmp_path):
    assert resolve_under(tmp_path, "/m1/out") == (tmp_path / "m1" / "out").resolve()
