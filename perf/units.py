"""Units of one metric made the same across both arms, through pint.

A metric may arrive in ``ms`` from one tool run and in ``s`` from another, or in ``Mbits/sec``
and ``Gbit/s``. Before comparing, every metric is brought to one unit: the unit most of its
samples already use (ties: the alphabetically first). Work is per distinct (metric, unit) pair,
never per row: the conversion factor is looked up once per pair and applied with one multiply.
Units pint cannot parse (``tps``, ``NA``, ``coremarks/sec``) are compared by name: the same name
is the same unit, two different ones for one metric are an error, as are units of different
dimensions (``ms`` and ``MB/s``). The pint registry is only built when some metric mixes units.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.errors import InputFormatError

# Spellings benchmark tools use that pint does not know (or knows as something else).
_ALIASES = {
    "usec": "microsecond",
    "usecs": "microsecond",
    "msec": "millisecond",
    "msecs": "millisecond",
    "nsec": "nanosecond",
    "secs": "second",
    "sec": "second",
    "KB": "kilobyte",
    "KB/s": "kilobyte/second",
    "KB/sec": "kilobyte/second",
    "Kbits/sec": "kilobit/second",
    "mins": "minute",
}


@lru_cache(maxsize=1)
def _registry() -> Any:
    import pint

    return pint.UnitRegistry()


@lru_cache(maxsize=4096)
def _parse(unit: str) -> Any | None:
    """The pint unit for ``unit``, or ``None`` when pint cannot read it (compared by name)."""
    text = _ALIASES.get(unit.strip(), unit.strip())
    if not text:
        return None
    try:
        return _registry().Quantity(1.0, text).units
    except Exception:  # pint raises several unrelated types for unknown units
        return None


def conversion_factor(metric: str, unit: str, to: str) -> float:
    """The factor that turns a value of ``metric`` in ``unit`` into ``to``; InputFormatError when
    the two cannot be converted."""
    if unit == to:
        return 1.0
    a, b = _parse(unit), _parse(to)
    if a is None or b is None or not (1.0 * a).is_compatible_with(b):
        raise InputFormatError(
            f"metric {metric!r} comes in units {to!r} and {unit!r}, which do not convert into "
            "each other",
            hint="give the metric one unit, or a different name per unit",
        )
    return float((1.0 * a).to(b).magnitude)


def normalize_units(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every metric's values and unit in one unit (see the module docstring).

    Returns ``df`` itself when no metric mixes units (the common case: nothing to do)."""
    if df.empty:
        return df
    from perf.normalize import as_category  # categoricals without missing values, cheaply

    metric, unit = as_category(df["metric"]), as_category(df["unit"])
    u_codes = unit.codes.astype(np.int64)
    n_units = max(len(unit.categories), 1)
    pair = metric.codes.astype(np.int64) * n_units + u_codes
    counts = np.bincount(pair, minlength=len(metric.categories) * n_units)
    present = np.flatnonzero(counts)
    per_metric = pd.Series(present // n_units).value_counts()
    if (per_metric <= 1).all():
        return df
    factor = np.ones(len(counts))
    target_code = np.full(len(counts), -1, dtype=np.int64)
    m_cats, u_cats = list(metric.categories), list(unit.categories)
    for m in per_metric.index[per_metric > 1]:
        pairs = present[present // n_units == m]
        units = [str(u_cats[p % n_units]) for p in pairs]
        # most samples first, then by name: deterministic whatever order the files came in
        target = min(zip(units, counts[pairs], strict=True), key=lambda uc: (-uc[1], uc[0]))[0]
        for p, u in zip(pairs, units, strict=True):
            factor[p] = conversion_factor(str(m_cats[m]), u, target)
            target_code[p] = u_cats.index(target)
    out = df.copy()
    out["value"] = df["value"].to_numpy(dtype=np.float64) * factor[pair]
    new_codes = np.where(target_code[pair] >= 0, target_code[pair], u_codes)
    out["unit"] = pd.Categorical.from_codes(new_codes, categories=unit.categories)
    return out


__all__ = ["conversion_factor", "normalize_units"]
