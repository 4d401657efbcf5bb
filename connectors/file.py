"""File delivery: JSON lines for air-gapped transfer, rotated by size and age.

A target's endpoint is a directory relative to the operator's file root (never outside it).
Deliveries are appended to `<member>.<target>.jsonl.part`, one `{"key", "rule", "alert"}` per
line, and a batch counts as delivered once written and fsynced. When the file passes its size
or age limit it is renamed to `<member>.<target>.<UTC time>.<n>.jsonl`: a name without `.part`
is complete and never written again, so a transfer job may move it away.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.core import DELIVERED, Delivery, Outcome, Result, all_results


def resolve_under(root: Path, endpoint: str) -> Path:
    """`endpoint` as a directory inside `root`; raises ValueError when it would leave it."""
    base = root.resolve()
    path = (base / endpoint.lstrip("/")).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"a file target must stay under {base}, got {endpoint[:64]!r}")
    return path


class FileConnector:
    """Appends one member target's deliveries to a rotating JSON-lines file."""

    name = "file"

    def __init__(self, directory: Path, stem: str, max_bytes: int, max_seconds: float) -> None:
        self._directory = directory
        self._stem = stem
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._opened_at: float | None = None
        self._rotations = 0
        self._sent = 0

    @property
    def current(self) -> Path:
        return self._directory / f"{self._stem}.jsonl.part"

    async def open(self) -> None:
        await asyncio.to_thread(self._directory.mkdir, parents=True, exist_ok=True)

    async def send_batch(self, batch: Sequence[Delivery]) -> list[Result]:
        lines = b"".join(
            orjson.dumps({"key": d.key, "rule": d.rule, "alert": d.alert}) + b"\n" for d in batch
        )
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as exc:
            return all_results(batch, Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}"[:300]))
        self._sent += len(batch)
        return all_results(batch, DELIVERED)

    def _append(self, lines: bytes) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self.current
        if path.exists() and self._opened_at is None:
            self._opened_at = time.monotonic()
        with path.open("ab") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        if self._opened_at is None:
            self._opened_at = time.monotonic()
        if size >= self._max_bytes or time.monotonic() - self._opened_at >= self._max_seconds:
            self.rotate()

    def rotate(self) -> Path | None:
        """Close the current file under its final name; None when there was nothing to close."""
        path = self.current
        if not path.exists() or path.stat().st_size == 0:
            return None
        self._rotations += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self._directory / f"{self._stem}.{stamp}.{self._rotations}.jsonl"
        path.rename(final)
        self._opened_at = None
        return final

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"connector": self.name, "endpoint": str(self._directory), "delivered": self._sent}
