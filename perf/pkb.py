"""PerfKitBenchmarker's newline-delimited JSON samples, as its publisher writes them.

PKB's ``NewlineDelimitedJSONPublisher`` writes one object per sample: ``metric``, ``value``,
``unit``, ``timestamp``, ``test``, ``run_uri``, ``sample_uri``, ``official``, ``owner``,
``product_name`` and either ``labels`` (``--collapse_labels``, the default: the metadata as one
string ``|key:value|,|key:value|``) or a ``metadata`` object. The metadata merges what the
benchmark set with what PKB's ``DefaultMetadataProvider`` adds per VM group: for the ``default``
group plain ``machine_type``/``image``/``zone``, for named groups a prefix (``vm_1_machine_type``).
Benchmarks with two VMs name the roles themselves: iperf sets ``sending_machine_type`` and
``receiving_machine_type``. The instance type is therefore looked up in that order (after a key
the user names); samples that carry none get an empty type and the reader warns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from perf.identity import configuration, experiment, identity_keys, mixed_metadata, placeholder

# Where a sample's instance type may be, in order; a user-named label goes first.
# Group-prefixed keys (``vm_1_machine_type``) are left to ``instance_type_label``: which group is
# "the" instance depends on the benchmark's configuration.
INSTANCE_TYPE_KEYS = (
    "machine_type",
    "sending_machine_type",
    "receiving_machine_type",
    "instance_type",
)
# Both VMs of a two-VM benchmark boot the image under test, so the first group's image will do.
IMAGE_KEYS = ("image", "ami", "vm_1_image")
INSTANCE_ID_KEYS = ("instance_id", "vm_id", "hostname")
_LABEL = re.compile(r"\|([^|]*)\|")


def parse_labels(labels: str) -> dict[str, str]:
    """``|cloud:AWS|,|image:ami-1|`` → ``{"cloud": "AWS", "image": "ami-1"}`` (split on first
    ':')."""
    out: dict[str, str] = {}
    for part in _LABEL.findall(labels):
        key, sep, value = part.partition(":")
        if sep:
            out[key] = value
    return out


def canonical(meta: dict[str, Any]) -> str:
    """Metadata as one canonical JSON string (sorted keys, no spaces): equal dicts, equal
    strings."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str) if meta else "{}"


def pkb_frame(
    raw: pd.DataFrame,
    *,
    instance_type_label: str | None = None,
    identity: Mapping[str, Sequence[str]] | None = None,
    warn: Callable[[str], None] | None = None,
    source: str = "",
) -> pd.DataFrame:
    """Imagefleet's sample columns from PKB records (``raw``: one row per JSON object), plus
    ``experiment``: the values of the benchmark's identity keys (``perf.identity``).

    Metadata is parsed once per distinct ``labels`` string or metadata object: a fleet repeats
    the same few label sets thousands of times. Time-series samples get the median of their
    points as their value; histogram samples are dropped (``perf.identity.placeholder``)."""
    raw, dropped = _placeholders(raw)
    if dropped and warn:
        warn(f"{source}: {dropped} PKB histogram sample(s) carry no value and were left out")
    n = len(raw)
    metas, codes = _distinct_metadata(raw)
    type_keys = ((instance_type_label,) if instance_type_label else ()) + INSTANCE_TYPE_KEYS

    def pick(keys: tuple[str, ...], default: str = "") -> pd.Categorical:
        values = [
            next((str(m[k]) for k in keys if m.get(k) not in (None, "")), default) for m in metas
        ]
        return _expand(values, codes)

    run_uri = raw["run_uri"].astype(str) if "run_uri" in raw.columns else pd.Series([""] * n)
    instance_id = pd.Series(np.asarray(pick(INSTANCE_ID_KEYS), dtype=object), index=raw.index)
    instance_id = instance_id.where(instance_id != "", run_uri.to_numpy())
    out = pd.DataFrame(
        {
            "metric": raw["metric"],
            "value": raw["value"],
            "unit": raw["unit"].fillna("").astype(str),
            "instance_type": pick(type_keys),
            "instance_id": instance_id,
            "ami": pick(IMAGE_KEYS),
            "benchmark": raw["test"].astype(str) if "test" in raw.columns else "",
            "timestamp": raw["timestamp"] if "timestamp" in raw.columns else 0.0,
            "metadata": _expand([canonical(m) for m in metas], codes),
        },
        index=raw.index,
    )
    if any("arm" in m for m in metas):
        out["arm"] = pick(("arm",))
    out["experiment"] = _experiments(out, metas, codes, identity, warn, source)
    return out


def _warn_mixed(
    out: pd.DataFrame,
    exp: np.ndarray,
    bench: np.ndarray,
    metas: list[dict[str, Any]],
    codes: np.ndarray,
    identity: Mapping[str, Sequence[str]] | None,
    warn: Callable[[str], None],
    source: str,
) -> None:
    """Warn about metrics whose samples split on metadata that is not an identity key."""
    itype = np.asarray(out["instance_type"], dtype=object).astype(str)
    metric = np.asarray(out["metric"], dtype=object).astype(str)
    counts: dict[tuple[str, str, str, int], int] = {}
    for t, m, e, b, code in zip(itype, metric, exp, bench, codes, strict=True):
        key = (t, f"{m}' ({e})" if e else f"{m}'", b, int(code))
        counts[key] = counts.get(key, 0) + 1
    groups: dict[tuple[str, str], list[tuple[dict[str, str], int]]] = {}
    for (t, m, b, code), n in counts.items():
        conf = configuration(metas[code], identity_keys(b, identity))
        groups.setdefault((t, m), []).append((conf, n))
    mixed = mixed_metadata(groups)
    if mixed:
        shown = "; ".join(f"'{m} by {', '.join(k)}" for m, k in list(mixed.items())[:10])
        more = f" and {len(mixed) - 10} more" if len(mixed) > 10 else ""
        warn(
            f"{source}: {len(mixed)} metric(s) pool samples that differ in metadata outside "
            f"their identity keys: {shown}{more}; add the keys to perf.identity_keys in the "
            "config to compare them apart"
        )


def _placeholders(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``raw`` with time series summarised and histogram samples dropped, and how many were."""
    values = pd.to_numeric(raw["value"], errors="coerce")
    maybe = np.flatnonzero(values.isin([-1.0, 0.0]).to_numpy())
    if len(maybe) == 0:
        return raw, 0
    raw = raw.copy()
    raw["value"] = raw["value"].astype(object)
    drop = []
    for i in maybe:
        row = raw.iloc[i]
        meta = _row_metadata(row)
        what = placeholder(str(row["metric"]), row["value"], meta)
        if what is None:
            continue
        if what[0] == "histogram":
            drop.append(raw.index[i])
        else:
            raw.iat[i, raw.columns.get_loc("value")] = what[1]
    out = raw.drop(index=drop) if drop else raw
    return out.reset_index(drop=True), len(drop)


def _row_metadata(row: pd.Series) -> dict[str, Any]:
    if "labels" in row.index and isinstance(row["labels"], str):
        return parse_labels(row["labels"])
    meta = row["metadata"] if "metadata" in row.index else None
    return meta if isinstance(meta, dict) else {}


def _experiments(
    out: pd.DataFrame,
    metas: list[dict[str, Any]],
    codes: np.ndarray,
    identity: Mapping[str, Sequence[str]] | None,
    warn: Callable[[str], None] | None,
    source: str,
) -> pd.Categorical:
    """Each row's experiment, worked out once per distinct (benchmark, metadata); warns about
    metrics whose samples differ in configuration metadata that is not an identity key."""
    bench = np.asarray(out["benchmark"], dtype=object).astype(str)
    pair, uniques = pd.factorize(pd.Series(list(zip(bench, codes, strict=True)), dtype=object))
    labels = []
    for b, code in uniques:
        keys = identity_keys(str(b), identity)
        labels.append(experiment(metas[int(code)], keys))
    exp = np.asarray(labels, dtype=object)[pair] if len(pair) else np.asarray([], dtype=object)
    if warn is not None and len(out):
        _warn_mixed(out, exp, bench, metas, codes, identity, warn, source)
    return pd.Categorical(exp.astype(str) if len(exp) else [])


def _distinct_metadata(raw: pd.DataFrame) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The distinct metadata dicts of the records and, per row, the index of its dict."""
    n = len(raw)
    if "labels" in raw.columns:
        codes, uniques = pd.factorize(raw["labels"].fillna("").astype(str))
        return [parse_labels(u) for u in uniques], codes
    if "metadata" in raw.columns:
        col = raw["metadata"].to_numpy(dtype=object)
        keys = [canonical(m) if isinstance(m, dict) else "{}" for m in col]
        codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
        return [json.loads(u) for u in uniques], codes
    return [{}], np.zeros(n, dtype=np.int64)


def _expand(values: list[str], codes: np.ndarray) -> pd.Categorical:
    """Per-distinct values spread to rows as a categorical (duplicate values merged)."""
    cats, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return pd.Categorical.from_codes(inverse[codes], categories=cats)


__all__ = ["IMAGE_KEYS", "INSTANCE_TYPE_KEYS", "canonical", "parse_labels", "pkb_frame"]
