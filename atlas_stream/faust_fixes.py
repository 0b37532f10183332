"""Fixes for faust-streaming 0.15.3 bugs that real Kafka shows (the worker's transport,
atlas_stream.transport, uses them). Each fix names the bug and the test that proves it."""

from __future__ import annotations

from typing import Any, Mapping

from faust.transport.consumer import TransactionManager

__all__ = ["FlushingTransactionManager"]


class FlushingTransactionManager(TransactionManager):  # type: ignore[misc]
    """Flushes the producer before it commits the transactions (``exactly_once``).

    faust-streaming 0.15.3 commits transactions without draining its send buffer, while its
    at-least-once path does flush first (``Consumer._commit_offsets``). Table changelog updates
    go through that buffer (``send_soon``), so updates made just before a commit landed in the
    *next* transaction; a SIGKILL then aborted them while the offsets they counted were already
    committed, and statistics recovered short (about 12 % of 6,000 records after three kills:
    tests/integration/test_real_kafka.py, the exactly_once test). Flushing first puts every
    message produced for the committed offsets in the same transaction.
    """

    async def commit(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        await self.app.producer.flush()
        return bool(await super().commit(offsets, start_new_transaction=start_new_transaction))

