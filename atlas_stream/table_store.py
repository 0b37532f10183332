"""A RocksDB table store that finds a key's database by the partition the key names.

Faust's ``rocksdb://`` store (faust/stores/rocksdb.py, on rocksdict) keeps one database per
changelog partition, but picks it from the *current event*: ``_set`` asserts that an event is
being processed and writes into the database of that event's partition, and ``_get`` and
``_contains`` look only there. Atlas Stream's statistics tables (:class:`PartitionKeyedTable`)
name their partition in the key and write the changelog there, whichever event is current (a
batch of events of several partitions is counted at once). With Faust's store such a write
outside an event crashes the worker (faust-streaming issue #261), and a write during an event of
another partition lands in the wrong database: after a restart the key is looked for in the
database of its own partition, not found, and the count starts again from zero.

:class:`PartitionKeyedRocksDBStore` keeps everything else of Faust's store (the persisted
changelog offset per partition, so a restart replays only what the database lacks; recovery;
rebalances) and reads and writes each key in the database of the partition its key names.
"""

from __future__ import annotations

from typing import Any, Optional

from faust.stores.rocksdb import Store as RocksDBStore

__all__ = ["PartitionKeyedRocksDBStore", "key_partition"]


def key_partition(key: bytes) -> int:
    """The partition named by a serialized ``<partition>|...`` key (raw, or a JSON string)."""
    text = key[1:] if key[:1] == b'"' else key
    return int(text.split(b"|", 1)[0])


class PartitionKeyedRocksDBStore(RocksDBStore):  # type: ignore[misc]
    """Faust's RocksDB store, each key kept in the database of the partition its key names."""

    def _set(self, key: bytes, value: Optional[bytes]) -> None:
        partition = key_partition(key)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> Optional[bytes]:
        db = self._dbs.get(key_partition(key))
        return None if db is None else db.get(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _del(self, key: bytes) -> None:
        db = self._dbs.get(key_partition(key))
        if db is not None:
            db.delete(key)
        self._key_index.pop(key, None)

    def _dbs_for_key(self, key: bytes) -> Any:
        db = self._dbs.get(key_partition(key))
        return [] if db is None else [db]
