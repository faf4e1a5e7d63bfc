"""One sample record end to end: the ``Sample`` dataclass (from ``perf.record``), readers into a
pandas frame, a writer.

Every measurement imagefleet collects is one flat record, as in PerfKitBenchmarker. The frame
the readers return has ``COLUMNS`` (or the subset a caller asks for); text columns, ``metadata``
included (a canonical JSON string, ``"{}"`` when empty), are ``category`` dtype, which keeps ten
million rows in a few hundred MB and lets every check run once per distinct value.

Formats: CSV with a header naming the columns, JSON lines of ``Sample.to_dict()`` records, and
PerfKitBenchmarker newline-delimited JSON samples (``labels`` string or ``metadata`` object; see
``perf.pkb``). Reading is vectorized (``pd.read_csv`` with per-column dtypes and only the columns
needed, ``pd.read_json(lines=True)``); only when that fails do we scan lines one by one, to name
the offending line. Timestamps are epoch seconds or ISO 8601.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from orchestrator.errors import InputFormatError, UsageError
from orchestrator.inputs import bounded_path
from perf.direction import KNOWN_METRICS, DirectionRules, infer_higher_is_better
from perf.normalize import ARMS, NO_INSTANCE_TYPE, OPTIONAL_COLUMNS, normalize
from perf.pkb import canonical, pkb_frame
from perf.record import Sample

COLUMNS = [
    "metric",
    "value",
    "unit",
    "higher_is_better",
    "instance_type",
    "instance_id",
    "ami",
    "arm",
    "benchmark",
    "timestamp",
    "metadata",
]
CATEGORY_COLUMNS = ["metric", "unit", "instance_type", "instance_id", "ami", "arm", "benchmark"]
REQUIRED_COLUMNS = ["metric", "value", "unit"]
JSON_CHUNK_LINES = 100_000

Format = Literal["csv", "jsonl", "pkb"]


# --- reading --------------------------------------------------------------------------------------
def read_samples(
    path: str | Path,
    *,
    format: Format | None = None,
    arm: str | None = None,
    arm_by_image: Mapping[str, str] | None = None,
    higher_is_better: Mapping[str, bool] | DirectionRules | None = None,
    instance_type_label: str | None = None,
    columns: Sequence[str] | None = None,
    warn: Callable[[str], None] | None = None,
    identity_keys: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Read a samples file (CSV, JSON lines or PKB NDJSON) into a frame with ``COLUMNS``.

    ``format`` is sniffed when omitted (``.csv`` → CSV; JSON lines with a ``labels`` key or
    ``official``/``run_uri`` and no ``arm`` → PKB). ``arm`` forces every row's arm;
    ``arm_by_image`` maps AMI/image → arm (PKB files carry images, not arms).
    ``higher_is_better`` overrides the direction per metric glob. ``instance_type_label`` names
    the column or PKB label that holds the instance type. ``columns`` limits the optional columns
    read (``instance_id``, ``ami``, ``benchmark``, ``timestamp``, ``metadata``; all when omitted).
    ``warn`` receives notices such as samples without an instance type. ``identity_keys``
    (benchmark glob → metadata keys) adds to ``perf.identity.DEFAULT_IDENTITY_KEYS``: PKB
    samples of one metric with different values of those keys are different cells, their metric
    named ``metric [key=value, …]``. A file may also be one JSON array of sample objects or
    pretty-printed (multi-line) objects one after another.
    """
    p = Path(path)
    try:
        with bounded_path(p, "samples", noun="samples file") as readable:
            try:
                return _read_samples(
                    readable,
                    format=format,
                    arm=arm,
                    arm_by_image=arm_by_image,
                    higher_is_better=higher_is_better,
                    instance_type_label=instance_type_label,
                    columns=columns,
                    warn=warn,
                    identity=identity_keys,
                )
            except InputFormatError as exc:  # a pipe read through a copy: name what the user gave
                if readable != p:
                    exc.message = exc.message.replace(str(readable), str(p))
                    exc.args = (exc.message,)
                raise
    except RecursionError:  # JSON arrays nested thousands deep, in a line or in its metadata
        raise InputFormatError(f"{p}: JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{p}: not UTF-8 (byte offset {exc.start})") from None


def _read_samples(
    p: Path,
    *,
    format: Format | None,
    arm: str | None,
    arm_by_image: Mapping[str, str] | None,
    higher_is_better: Mapping[str, bool] | DirectionRules | None,
    instance_type_label: str | None,
    columns: Sequence[str] | None,
    warn: Callable[[str], None] | None,
    identity: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    if arm is not None and arm not in ARMS:
        raise UsageError(f"arm must be one of {ARMS}, not {arm!r}")
    wanted = list(OPTIONAL_COLUMNS if columns is None else columns)
    unknown = [c for c in wanted if c not in OPTIONAL_COLUMNS]
    if unknown:
        raise UsageError(f"unknown sample column(s) {', '.join(unknown)}")
    if not p.is_file():
        raise InputFormatError(f"{p}: no such samples file")
    rules = (
        higher_is_better
        if isinstance(higher_is_better, DirectionRules)
        else DirectionRules.of(higher_is_better)
    )
    fmt = format or _sniff(p)
    if fmt == "csv":
        df, first = _read_csv(p, wanted, arm is None, instance_type_label), 2
    elif fmt == "jsonl":
        df, first = _read_jsonl(p), 1
        if instance_type_label and instance_type_label in df:
            df["instance_type"] = df[instance_type_label]
    elif fmt == "pkb":
        df, first = _read_pkb(p, instance_type_label, identity, warn), 1
    else:
        raise UsageError(f"unknown samples format {fmt!r}; use csv, jsonl or pkb")
    out = normalize(
        df,
        p,
        first_line=first,
        arm=arm,
        arm_by_image=arm_by_image,
        rules=rules,
        columns=wanted,
        warn=warn,
    )
    if "experiment" in df.columns:
        out["metric"] = _with_experiments(out["metric"], df["experiment"])
    return out[[c for c in COLUMNS if c in out.columns]]


def _with_experiments(metric: pd.Series, exp: pd.Series) -> pd.Categorical:
    """``metric [experiment]`` per row, built once per distinct (metric, experiment) pair."""
    from perf.identity import with_experiment

    pairs = pd.Series(list(zip(metric.astype(str), exp.astype(str), strict=True)), dtype=object)
    codes, uniques = pd.factorize(pairs)
    names = np.asarray([with_experiment(m, e) for m, e in uniques], dtype=object)
    return pd.Categorical(names[codes]) if len(codes) else pd.Categorical([])


def concat_samples(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of samples one under the other, categoricals unioned (not turned into objects)."""
    if len(frames) == 1:
        return frames[0]
    out: dict[str, Any] = {}
    for c in frames[0].columns:
        cols = [f[c] for f in frames]
        if all(isinstance(s.dtype, pd.CategoricalDtype) for s in cols):
            out[c] = union_categoricals([s.array for s in cols])
        else:
            out[c] = np.concatenate([s.to_numpy() for s in cols])
    return pd.DataFrame(out)


def _sniff(p: Path) -> Format:
    if p.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    with p.open("rb") as fh:
        for raw in fh:
            line = raw.strip()
            if not line:
                continue
            if not line.startswith((b"{", b"[")):
                return "csv"
            try:
                first = json.loads(line)
            except ValueError:
                objects = _json_document(p)  # pretty-printed: the first object of the document
                if not objects:
                    return "jsonl"  # the JSON reader will name the line
                first = objects[0]
            if isinstance(first, list):
                first = first[0] if first else {}
            if not isinstance(first, dict):
                return "jsonl"
            if "arm" not in first and (
                "labels" in first
                or "run_uri" in first
                or "official" in first
                or (isinstance(first.get("metadata"), dict) and "instance_type" not in first)
            ):
                return "pkb"
            return "jsonl"
    return "jsonl"


def _json_document(p: Path) -> list[dict[str, Any]] | None:
    """The sample objects of a file that is one JSON array of objects, or objects written one
    after another over several lines each (``jq .`` output, ``json.dump(..., indent=2)``);
    ``None`` when it is neither."""
    text = p.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        try:
            obj, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        items = obj if isinstance(obj, list) else [obj]
        if not all(isinstance(o, dict) for o in items):
            return None
        out.extend(items)
    return out or None


def _read_csv(p: Path, wanted: list[str], need_arm: bool, label: str | None) -> pd.DataFrame:
    """Only the needed columns, text as ``category`` and values as float64, by pandas' C parser."""
    try:
        head = pd.read_csv(p, nrows=0)
    except pd.errors.EmptyDataError:
        raise InputFormatError(f"{p}:1: empty CSV file, expected a header") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"{p}:1: unreadable CSV header: {exc}") from None
    cols = list(head.columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise InputFormatError(f"{p}:1: CSV header lacks column(s) {', '.join(missing)}")
    type_col = label if label and label in cols else "instance_type"
    use = [*REQUIRED_COLUMNS, type_col, "higher_is_better", *wanted, *(["arm"] if need_arm else [])]
    use = [c for c in dict.fromkeys(use) if c in cols]
    dtypes: dict[str, Any] = {c: "category" for c in use}
    dtypes |= {"value": "float64", "higher_is_better": "object"}
    if "timestamp" in use:
        dtypes["timestamp"] = _timestamp_dtype(p)
    try:
        df = pd.read_csv(
            p,
            usecols=use,
            dtype=dtypes,
            keep_default_na=False,
            na_values={"value": ["", "NaN", "nan"]},
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        line = _first_bad_csv_line(p, cols)
        raise InputFormatError(f"{p}:{line}: unreadable CSV row: {_short(exc)}") from None
    return df.rename(columns={type_col: "instance_type"}) if type_col != "instance_type" else df


def _timestamp_dtype(p: Path) -> str:
    """float64 when the first rows' timestamps are numbers, else text (ISO 8601) to convert."""
    sample = pd.read_csv(p, usecols=["timestamp"], nrows=1000, dtype=str, keep_default_na=False)
    return (
        "float64" if pd.to_numeric(sample["timestamp"], errors="coerce").notna().all() else "object"
    )


def _first_bad_csv_line(p: Path, cols: list[str]) -> int | str:
    import csv

    vi = cols.index("value")
    ti = cols.index("timestamp") if "timestamp" in cols else None
    with p.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if len(row) != len(cols):
                return line
            try:
                float(row[vi])
                if ti is not None and row[ti].strip():
                    float(row[ti])
            except ValueError:
                return line
    return "?"


def _read_json_lines(p: Path) -> pd.DataFrame:
    try:
        # Chunked: measured ~40 % faster than one read_json call on 1M lines (less peak memory).
        with pd.read_json(p, lines=True, dtype=False, chunksize=JSON_CHUNK_LINES) as reader:
            chunks = list(reader)
        df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    except ValueError as exc:
        objects = _json_document(p)
        if objects is not None:
            return pd.DataFrame.from_records(objects)
        line = _first_bad_json_line(p)
        raise InputFormatError(f"{p}:{line}: not a JSON object: {_short(exc)}") from None
    if df.empty:
        raise InputFormatError(f"{p}:1: no samples in file")
    return df


def _first_bad_json_line(p: Path) -> int | str:
    with p.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                obj = json.loads(raw)
            except ValueError:
                return n
            if not isinstance(obj, dict):
                return n
    return "?"


def _read_jsonl(p: Path) -> pd.DataFrame:
    df = _read_json_lines(p)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputFormatError(f"{p}:1: samples lack field(s) {', '.join(missing)}")
    return df


def _read_pkb(
    p: Path,
    label: str | None,
    identity: Mapping[str, Sequence[str]] | None,
    warn: Callable[[str], None] | None,
) -> pd.DataFrame:
    raw = _read_json_lines(p)
    missing = [c for c in ("metric", "value", "unit") if c not in raw.columns]
    if missing:
        raise InputFormatError(f"{p}:1: PKB samples lack field(s) {', '.join(missing)}")
    return pkb_frame(raw, instance_type_label=label, identity=identity, warn=warn, source=str(p))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


# --- building and writing -------------------------------------------------------------------------
def samples_frame(samples: Iterable[Sample | Mapping[str, Any]]) -> pd.DataFrame:
    """A frame with ``COLUMNS`` from ``Sample`` objects or their dicts (validated via
    ``Sample``)."""
    rows = [
        s.to_dict() if isinstance(s, Sample) else Sample.from_dict(s).to_dict() for s in samples
    ]
    df = pd.DataFrame.from_records(rows, columns=COLUMNS)
    df["metadata"] = [canonical(m) for m in df["metadata"]]
    df["value"] = df["value"].astype("float64")
    df["timestamp"] = df["timestamp"].astype("float64")
    df["higher_is_better"] = df["higher_is_better"].astype(bool)
    for c in CATEGORY_COLUMNS:
        df[c] = df[c].astype("category")
    return df


def write_jsonl(
    samples: pd.DataFrame | Iterable[Sample | Mapping[str, Any]], dest: str | Path | IO[str]
) -> int:
    """Write samples as JSON lines (``Sample.to_dict()`` records, metadata as an object).

    Returns the number of records written. ``dest`` is a path or a text stream."""
    df = samples if isinstance(samples, pd.DataFrame) else samples_frame(samples)
    df = df[COLUMNS].copy()
    for c in CATEGORY_COLUMNS:
        df[c] = df[c].astype(str)
    meta = df["metadata"].astype(object)
    codes, uniques = pd.factorize(meta.map(lambda m: m if isinstance(m, str) else canonical(m)))
    parsed = np.asarray([json.loads(u) for u in uniques] + [{}], dtype=object)
    df["metadata"] = parsed[codes]
    text = df.to_json(orient="records", lines=True) if len(df) else ""
    if text and not text.endswith("\n"):
        text += "\n"
    if isinstance(dest, (str, Path)):
        Path(dest).write_text(text, encoding="utf-8")
    else:
        dest.write(text)
    return len(df)


__all__ = [
    "ARMS",
    "COLUMNS",
    "KNOWN_METRICS",
    "NO_INSTANCE_TYPE",
    "DirectionRules",
    "Sample",
    "concat_samples",
    "infer_higher_is_better",
    "read_samples",
    "samples_frame",
    "write_jsonl",
]
