"""Which offsets of the member topics may be committed.

A record read from a member topic is owed one outcome per endpoint it goes to. Its offset may
be committed only when it and every record before it on its partition have all their outcomes
(delivered with a receipt written, or dead-lettered), so a crash at any moment re-delivers
what was not finished and never skips it. Thread-safe: outcomes arrive on the event loop,
revocations on the consumer's thread.
"""

from __future__ import annotations

import threading

Partition = tuple[str, int]


class OffsetBook:
    """Outstanding records per partition, in offset order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owed: dict[Partition, dict[int, int]] = {}
        self._next: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}

    def read(self, partition: Partition, offset: int, outcomes: int) -> None:
        """A record was read that is owed `outcomes` outcomes (0: nothing to do for it)."""
        with self._lock:
            if outcomes > 0:
                self._owed.setdefault(partition, {})[offset] = outcomes
            self._next[partition] = offset + 1

    def done(self, partition: Partition, offset: int) -> None:
        """One outcome of a record arrived; ignored for a partition no longer owned."""
        with self._lock:
            owed = self._owed.get(partition)
            if owed is None or offset not in owed:
                return
            owed[offset] -= 1
            if owed[offset] <= 0:
                del owed[offset]

    def committable(self, partitions: list[Partition] | None = None) -> dict[Partition, int]:
        """Offsets to commit that moved since the last commit: the first unfinished record's,
        or one past the last read when all are finished."""
        with self._lock:
            out: dict[Partition, int] = {}
            for partition, after_last in self._next.items():
                if partitions is not None and partition not in partitions:
                    continue
                owed = self._owed.get(partition)
                offset = next(iter(owed)) if owed else after_last
                if self._committed.get(partition) != offset:
                    out[partition] = offset
            return out

    def committed(self, offsets: dict[Partition, int]) -> None:
        with self._lock:
            self._committed.update(offsets)

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(owed) for owed in self._owed.values())

    def drop(self, partitions: list[Partition]) -> None:
        """Forget partitions given to another consumer."""
        with self._lock:
            for partition in partitions:
                self._owed.pop(partition, None)
                self._next.pop(partition, None)
                self._committed.pop(partition, None)
