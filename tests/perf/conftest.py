"""Shared builders for the perf tests: samples frames from plain arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from perf.samples import COLUMNS


def frame(
    baseline: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    *,
    metric: str = "latency",
    unit: str = "ms",
    higher_is_better: bool = False,
    instance_type: str = "m5.large",
    instance_ids: tuple[Sequence[str], Sequence[str]] | None = None,
) -> pd.DataFrame:
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    ids = instance_ids or ([f"b-{i}" for i in range(len(b))], [f"c-{i}" for i in range(len(c))])
    n = len(b) + len(c)
    return pd.DataFrame(
        {
            "metric": metric,
            "value": np.r_[b, c],
            "unit": unit,
            "higher_is_better": higher_is_better,
            "instance_type": instance_type,
            "instance_id": [*ids[0], *ids[1]],
            "ami": ["ami-b"] * len(b) + ["ami-c"] * len(c),
            "arm": ["baseline"] * len(b) + ["candidate"] * len(c),
            "benchmark": "synthetic",
            "timestamp": np.zeros(n),
            "metadata": "{}",
        }
    )[COLUMNS]


@pytest.fixture
def make_frame() -> Callable[..., pd.DataFrame]:
    return frame
