"""Re-batching NetSuite's pages into the cycle's batches (shared by every gateway)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ar_sync.netsuite.gateway import rebatch


@given(st.lists(st.lists(st.integers(), max_size=7), max_size=9), st.integers(1, 10))
def test_every_item_once_in_order_in_full_batches(pages: list[list[int]], size: int) -> None:
    batches = list(rebatch(iter(pages), size))
    assert [x for b in batches for x in b] == [x for p in pages for x in p]
    assert all(len(b) == size for b in batches[:-1])
    assert all(0 < len(b) <= size for b in batches)


def test_a_page_is_read_only_when_needed() -> None:
    read: list[int] = []

    def pages():  # type: ignore[no-untyped-def]
        for n in range(5):
            read.append(n)
            yield [n] * 3

    batches = rebatch(pages(), 4)
    assert next(batches) == [0, 0, 0, 1] and read == [0, 1]


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(rebatch([[1]], 0))
