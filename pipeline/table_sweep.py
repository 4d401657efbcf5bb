"""Expiry of the Faust dedup table (at-least-once processing).

The table has no expiry of its own, so windows that closed long ago would stay in it for
ever. The dispatch agent calls `TableSweep.step` after each batch, in its own task: a step
looks at the next slice of entries and deletes the expired ones, from the local store and,
with a tombstone, from the table's changelog, so a restore does not bring them back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pipeline.dedupe import Seen

Entries = Callable[[], Iterable[tuple[bytes, bytes]]]


class TableSweep:
    """Deletes entries of a Faust table that `expired` says are over, `per_step` entries per
    step (or the step's own share), going round the whole table one cycle after another.

    `entries` gives one cycle's (key, stored value) pairs of the worker's own partitions; a
    RocksDB store iterates a consistent snapshot, a memory store's dict must be copied first.
    An entry is read again before it is deleted, so a sighting written after the cycle began
    keeps its window. Its changelog partition is the partition of the record that opened the
    window (the table is co-partitioned with the normalised topic); an entry of a partition
    that `owned` says another worker holds now is left to that worker.
    """

    def __init__(
        self,
        table: Any,
        entries: Entries,
        expired: Callable[[bytes], bool],
        owned: Callable[[int], bool],
        per_step: int = 1000,
    ) -> None:
        self._table, self._entries, self._expired, self._owned = table, entries, expired, owned
        self._per_step = per_step
        self._cycle: Iterator[tuple[bytes, bytes]] | None = None

    def step(self, share: int | None = None) -> int:
        """Look at the next `share` entries (`per_step` by default); returns how many were
        deleted."""
        share = self._per_step if share is None else share
        if self._cycle is None:
            self._cycle = iter(self._entries())
        store, deleted, looked = self._table.data, 0, 0
        entries = itertools.islice(self._cycle, share)
        while True:
            try:
                key, value = next(entries)
            except StopIteration:
                break
            except RuntimeError:  # the store opened a partition's database under the cycle
                self._cycle = None
                return deleted
            looked += 1
            if not self._expired(value):
                continue
            current = store.get(key)
            if current is None or not self._expired(current):
                continue
            partition = Seen.from_bytes(current).origin[0]
            if not self._owned(partition):
                continue
            del store[key]
            self._table.send_changelog(partition, key, None, value_serializer="raw")
            deleted += 1
        if looked < share:
            self._cycle = None  # the cycle is over: the next step starts a new one
        return deleted

    def restart(self) -> None:
        """Drop the cycle under way (on a rebalance): it holds the revoked partitions' databases
        open, which the store must be able to open again if they come back."""
        self._cycle = None
