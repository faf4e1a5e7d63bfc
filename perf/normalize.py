"""A raw frame from any samples format → imagefleet's sample columns, checked. Per category, not per
row.

Text columns stay ``category`` from the reader on: direction, arm, instance type and metadata
are worked out once per distinct value (or distinct (metric, unit) pair) and spread back to the
rows through the integer codes. Only ``value`` and ``timestamp`` are touched row by row, by numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.errors import InputFormatError, UsageError
from perf.direction import DirectionRules, infer_higher_is_better
from perf.pkb import canonical
from perf.record import ARMS

NO_INSTANCE_TYPE = "(no instance type)"
OPTIONAL_COLUMNS = ("instance_id", "ami", "benchmark", "timestamp", "metadata")
Warn = Callable[[str], None]


def normalize(
    df: pd.DataFrame,
    p: Path,
    *,
    first_line: int,
    arm: str | None,
    arm_by_image: Mapping[str, str] | None,
    rules: DirectionRules,
    columns: Sequence[str],
    warn: Warn | None,
) -> pd.DataFrame:
    """The checked frame: ``metric, value, unit, higher_is_better, instance_type, arm`` plus the
    optional ``columns`` asked for."""
    df = df.reset_index(drop=True)
    if len(df) == 0:
        raise InputFormatError(
            f"{p}: no samples in file", hint="a samples file needs at least one row"
        )
    out: dict[str, Any] = {}
    out["metric"] = as_category(df["metric"])
    out["value"] = _values(df["value"], p, first_line)
    out["unit"] = as_category(df["unit"]) if "unit" in df else _constant("", len(df))
    out["higher_is_better"] = _direction(df, out["metric"], out["unit"], p, rules, first_line)
    out["instance_type"] = _instance_types(df, p, warn)
    ami = as_category(df["ami"]) if "ami" in df else _constant("", len(df))
    out["arm"] = _arms(df, ami, p, first_line, arm, arm_by_image)
    for c in columns:
        if c == "ami":
            out[c] = ami
        elif c == "timestamp":
            out[c] = _timestamps(df["timestamp"], p, first_line) if c in df else np.zeros(len(df))
        elif c == "metadata":
            out[c] = (
                _metadata(df["metadata"], p, first_line) if c in df else _constant("{}", len(df))
            )
        else:
            out[c] = as_category(df[c]) if c in df else _constant("", len(df))
    return pd.DataFrame(out)


def as_category(col: pd.Series) -> pd.Categorical:
    """``col`` as a categorical of strings with missing values as ``""``; categories stay
    categories (no per-row string conversion)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.array
        cats = cat.categories
        if cats.dtype != object or any(not isinstance(c, str) for c in cats):
            cat = cat.rename_categories([str(c) for c in cats])
        if (cat.codes < 0).any():
            if "" not in cat.categories:
                cat = cat.add_categories([""])
            cat = cat.fillna("")
        return cat
    return pd.Categorical(col.astype(object).where(col.notna(), "").astype(str))


def _constant(value: str, n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _values(col: pd.Series, p: Path, first_line: int) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce") if col.dtype == object else col
    bad = values.isna().to_numpy()
    bad = bad | np.isinf(
        values.to_numpy(dtype=np.float64, na_value=np.nan)
    )  # 1e999, "inf": not a measurement
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputFormatError(f"{p}:{first_line + i}: value {col.iloc[i]!r} is not a number")
    numbers: np.ndarray = values.to_numpy(dtype=np.float64)
    return numbers


def _pair_index(a: pd.Categorical, b: pd.Categorical) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) code pairs (as ``a_code * len(b) + b_code``) and each row's pair index."""
    nb = max(len(b.categories), 1)
    pair = a.codes.astype(np.int64) * nb + b.codes.astype(np.int64)
    size = max(len(a.categories), 1) * nb
    if size <= 10_000_000:
        present = np.flatnonzero(np.bincount(pair, minlength=size))
        lookup = np.zeros(size, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        return present, lookup[pair]
    present, inverse = np.unique(pair, return_inverse=True)
    return present, inverse


def _direction(
    df: pd.DataFrame,
    metric: pd.Categorical,
    unit: pd.Categorical,
    p: Path,
    rules: DirectionRules,
    first_line: int,
) -> np.ndarray:
    """Per row: a glob override, else the file's own value, else inference from metric and unit;
    all worked out per distinct (metric, unit) pair."""
    present, at = _pair_index(metric, unit)
    nu = max(len(unit.categories), 1)
    pairs = [(str(metric.categories[k // nu]), str(unit.categories[k % nu])) for k in present]
    forced = np.array([_code(rules.lookup(m)) for m, _ in pairs], dtype=np.int8)
    inferred = np.array([_code(infer_higher_is_better(m, u)) for m, u in pairs], dtype=np.int8)
    out = inferred[at]
    if "higher_is_better" in df:
        codes, uniques = pd.factorize(df["higher_is_better"], use_na_sentinel=True)
        try:
            from_file = np.array([_code(_to_bool(u)) for u in uniques] + [-1], dtype=np.int8)[codes]
        except ValueError as exc:
            raise InputFormatError(f"{p}: bad higher_is_better value {exc}") from None
        out = np.where(from_file >= 0, from_file, out)
    out = np.where(forced[at] >= 0, forced[at], out)
    if (out < 0).any():
        i = int(np.flatnonzero(out < 0)[0])
        m, u = pairs[at[i]]
        raise InputFormatError(
            f"{p}:{first_line + i}: cannot tell whether more or less is better for metric {m!r} "
            f"(unit {u!r})",
            hint=f"say which: --higher-is-better '{m}' or --lower-is-better '{m}' "
            "(or [perf] higher_is_better / lower_is_better in the config)",
        )
    higher: np.ndarray = out.astype(bool)
    return higher


def _code(v: bool | None) -> int:
    return -1 if v is None else int(v)


def _to_bool(v: object) -> bool | None:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "1", "yes", "t"):
            return True
        if s in ("false", "0", "no", "f"):
            return False
        if s == "":
            return None
        raise ValueError(repr(v))
    if isinstance(v, float) and math.isnan(v):
        return None
    return bool(v)


def _instance_types(df: pd.DataFrame, p: Path, warn: Warn | None) -> pd.Categorical:
    """Instance types; samples without one become their own visible cell, with a warning."""
    cat = as_category(df["instance_type"]) if "instance_type" in df else _constant("", len(df))
    if "" not in cat.categories:
        return cat
    blank = int((cat.codes == cat.categories.get_loc("")).sum())
    if blank == 0:
        return cat.remove_categories([""])
    if NO_INSTANCE_TYPE in cat.categories:  # both spellings present: merge them
        codes = np.where(
            cat.codes == cat.categories.get_loc(""),
            cat.categories.get_loc(NO_INSTANCE_TYPE),
            cat.codes,
        )
        cat = pd.Categorical.from_codes(codes, categories=cat.categories).remove_categories([""])
    else:
        cat = cat.rename_categories({"": NO_INSTANCE_TYPE})
    if warn is not None:
        warn(
            f"{p}: {blank} sample(s) carry no instance type; they are compared as their own cell "
            f"{NO_INSTANCE_TYPE!r} (PKB: machine_type, sending_machine_type or "
            "receiving_machine_type; or name the label with --instance-type-label)"
        )
    return cat


def _arms(
    df: pd.DataFrame,
    ami: pd.Categorical,
    p: Path,
    first_line: int,
    arm: str | None,
    arm_by_image: Mapping[str, str] | None,
) -> pd.Categorical:
    n = len(df)
    if arm is not None:
        return pd.Categorical.from_codes(
            np.full(n, ARMS.index(arm), dtype=np.int8), categories=ARMS
        )
    if arm_by_image:
        mapped = [arm_by_image.get(str(c)) for c in ami.categories]
        missing = [i for i, m in enumerate(mapped) if m is None and (ami.codes == i).any()]
        if missing:
            i = int(np.flatnonzero(ami.codes == missing[0])[0])
            raise InputFormatError(
                f"{p}:{first_line + i}: image {str(ami.categories[missing[0]])!r} "
                "is in neither arm",
                hint=f"arm_by_image knows {sorted(arm_by_image)}",
            )
        return _recode(ami, [m or ARMS[0] for m in mapped], p, first_line)
    if "arm" not in df:
        raise UsageError(f"{p}: the samples carry no arm; say which (arm=... or arm_by_image=...)")
    cat = as_category(df["arm"])
    return _recode(cat, [str(c) for c in cat.categories], p, first_line)


def _recode(
    cat: pd.Categorical, arm_of_category: list[str], p: Path, first_line: int
) -> pd.Categorical:
    """Rows' arms from one arm per category of ``cat``; an unknown arm names its first line."""
    table = np.array(
        [ARMS.index(a) if a in ARMS else -1 for a in arm_of_category] or [-1], dtype=np.int8
    )
    codes = table[cat.codes]
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise InputFormatError(
            f"{p}:{first_line + i}: arm {arm_of_category[cat.codes[i]]!r} "
            "is not baseline or candidate"
        )
    return pd.Categorical.from_codes(codes, categories=ARMS)


def _timestamps(col: pd.Series, p: Path, first_line: int) -> np.ndarray:
    """Seconds since the epoch from epoch numbers or ISO 8601 text (``2026-11-24T00:00:00Z``)."""
    seconds: np.ndarray
    if col.dtype.kind in "fiu":
        seconds = col.fillna(0.0).to_numpy(dtype=np.float64)
        return seconds
    text = col.astype(object)
    blank = text.isna() | (text.astype(str).str.strip() == "")
    out = pd.to_numeric(text.where(~blank, "0"), errors="coerce")
    iso = out.isna().to_numpy()
    if iso.any():
        parsed = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(iso)[np.flatnonzero(bad)[0]])
            raise InputFormatError(
                f"{p}:{first_line + i}: timestamp {text.iloc[i]!r} is neither "
                "epoch seconds nor ISO 8601 (like 2026-11-24T00:00:00Z)"
            )
        out[iso] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    seconds = out.to_numpy(dtype=np.float64)
    return seconds


def _metadata(col: pd.Series, p: Path, first_line: int) -> pd.Categorical:
    """Metadata as canonical JSON strings: parsed once per distinct string; dict objects (JSON
    lines) once per distinct serialisation."""
    values = (
        col.astype(object).to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else None
    )
    if values is not None:
        keys = np.empty(len(values), dtype=object)
        for i, m in enumerate(values):  # JSON objects arrive as dicts: one dumps per row
            if isinstance(m, dict):
                keys[i] = canonical(m)
            elif m is None or (isinstance(m, float) and math.isnan(m)):
                keys[i] = ""
            elif isinstance(m, str):
                keys[i] = m
            else:
                raise InputFormatError(
                    f"{p}:{first_line + i}: metadata must be an object, not {m!r}"
                )
        col = pd.Series(pd.Categorical(keys))
    cat = as_category(col)
    canon = []
    for k, m in enumerate(cat.categories):
        try:
            parsed = json.loads(m) if m.strip() else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            i = int(np.flatnonzero(cat.codes == k)[0])
            raise InputFormatError(
                f"{p}:{first_line + i}: metadata is not a JSON object: {m[:60]!r}"
            )
        canon.append(canonical(parsed))
    uniq, inverse = np.unique(np.asarray(canon, dtype=object).astype(str), return_inverse=True)
    codes = inverse[cat.codes] if len(canon) else np.zeros(len(cat), dtype=np.int64)
    return pd.Categorical.from_codes(codes, categories=uniq if len(uniq) else ["{}"])


__all__ = ["ARMS", "NO_INSTANCE_TYPE", "OPTIONAL_COLUMNS", "as_category", "normalize"]
