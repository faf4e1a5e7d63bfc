"""``orchestrator.aws.batches``: the one way imagefleet splits a list to fit an AWS call's limit."""

from __future__ import annotations

import pytest

from orchestrator.aws import batches


@pytest.mark.parametrize(
    ("n", "size", "sizes"),
    [
        (0, 25, []),
        (25, 25, [25]),
        (26, 25, [25, 1]),
        (2500, 1000, [1000, 1000, 500]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_batches_cover_every_item_once_in_order(n: int, size: int, sizes: list[int]) -> None:
    items = [f"i-{k:05d}" for k in range(n)]
    got = list(batches(items, size))
    assert [len(b) for b in got] == sizes
    assert [i for b in got for i in b] == items


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        list(batches([1, 2], 0))
