"""Property-based fuzz of every input parser through the real commands (``raw_main``).

Whatever the config file, package manifest, samples file, judge file or base reference holds, a
command ends with exit 0, 1 or 2 — never a traceback, never exit 3 for input — and the state
store is unchanged. Examples are bounded so the fuzz stays a few seconds in CI.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from bad_input_support import Result, Workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.create(tmp_path_factory.mktemp("fuzz"))


def assert_handled(ws: Workspace, res: Result, before: str) -> None:
    assert res.code in (0, 1, 2), res
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr, res.stderr
    assert ws.snapshot() == before


# --- values as users write them
# ---------------------------------------------------------------------
nasty_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_floats,
    st.just(10**40),
    st.just(-(10**40)),
)
names = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["../../etc", "demo\n", "a" * 5000, "", " ", "²", "ami-1"]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, names),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(names, kids, max_size=4),
    max_leaves=12,
)


def toml_value(value: Any) -> str:
    """A value in TOML syntax (nan and inf included, which TOML allows)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


toml_values = st.recursive(
    st.one_of(st.booleans(), numbers, names), lambda kids: st.lists(kids, max_size=3), max_leaves=6
)


# --- the config file
# --------------------------------------------------------------------------------
@FUZZ
@given(
    line=st.integers(min_value=0, max_value=60),
    key=st.sampled_from(
        [
            "regions",
            "max_attempts",
            "max_retry_seconds",
            "soak",
            "build_timeout",
            "accounts",
            "families",
            "os",
            "pass_threshold",
            "waves",
            "period",
            "instances_per_arm",
            "duration",
            "timeouts",
            "endpoint_url",
            "source_ami",
            "cohort_instance_types",
            "require",
            "backend",
            "path",
        ]
    ),
    value=toml_values,
)
def test_config_key_values(ws: Workspace, line: int, key: str, value: Any) -> None:
    lines = ws.config.read_text().splitlines()
    at = min(line, len(lines))
    lines.insert(at, f"{key} = {toml_value(value)}")
    fuzz = ws.root / "fuzz.toml"
    fuzz.write_text("\n".join(lines) + "\n")
    before = ws.snapshot()
    res = ws.run_with(fuzz, "iam-policy")
    assert_handled(ws, res, before)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    cut=st.integers(min_value=0, max_value=2000),
)
def test_config_bytes(ws: Workspace, data: bytes, cut: int) -> None:
    template = ws.config.read_bytes()
    fuzz = ws.root / "fuzz.toml"
    fuzz.write_bytes(template[:cut] + data + template[cut:])
    before = ws.snapshot()
    assert_handled(ws, ws.run_with(fuzz, "iam-policy"), before)


# --- package manifests ----------------------------------------------------------------------------
manifest_lines = st.one_of(
    st.text(max_size=60),
    st.tuples(names, names).map(lambda t: f"{t[0]}\t{t[1]}"),
    st.tuples(names, names, names).map(lambda t: f"{t[0]}\t{t[1]}\t{t[2]}"),
    st.sampled_from(
        [
            "ii  bash 5.2-1 amd64 GNU shell",
            "openssl\t3.0.11-1~deb12u2",
            "snap:lxd\t24322",
            "Package: bash\nVersion: 5.2\n",
            "curl:amd64\t7.88.1-10",
            "x\t" + "9" * 5000,
        ]
    ),
)


@FUZZ
@given(
    old=st.lists(manifest_lines, max_size=6),
    new=st.lists(manifest_lines, max_size=6),
    raw=st.binary(max_size=80),
)
def test_manifest_parser(ws: Workspace, old: list[str], new: list[str], raw: bytes) -> None:
    a, b = ws.root / "a.manifest", ws.root / "b.manifest"
    a.write_text("\n".join(old) + "\n", encoding="utf-8", errors="surrogatepass")
    b.write_bytes(("\n".join(new) + "\n").encode("utf-8", "surrogatepass") + raw)
    before = ws.snapshot()
    assert_handled(ws, ws.run("changelog", "diff", str(a), str(b), "--format", "json"), before)


# --- perf samples ---------------------------------------------------------------------------------
sample = st.fixed_dictionaries(
    {"metric": names, "value": st.one_of(numbers, names, st.none())},
    optional={
        "unit": names,
        "arm": st.sampled_from(["baseline", "candidate", "x"]),
        "instance_type": names,
        "timestamp": st.one_of(numbers, names),
        "metadata": json_values,
        "labels": names,
    },
)


@FUZZ
@given(rows=st.lists(sample, max_size=8), csv=st.booleans(), tail=st.text(max_size=40))
def test_samples_parser(ws: Workspace, rows: list[dict[str, Any]], csv: bool, tail: str) -> None:
    path = ws.root / ("s.csv" if csv else "s.jsonl")
    if csv:
        cols = ["metric", "value", "unit", "instance_type", "arm"]
        text = (
            ",".join(cols)
            + "\n"
            + "".join(",".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows)
        )
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + tail, encoding="utf-8", errors="surrogatepass")
    before = ws.snapshot()
    assert_handled(ws, ws.run("perf", "compare", str(path), str(path), "--format", "json"), before)


# --- canary judge files ---------------------------------------------------------------------------
@FUZZ
@given(
    baseline=json_values,
    canary=st.one_of(
        json_values,
        st.dictionaries(
            st.just("metrics"), st.dictionaries(names, st.lists(numbers, max_size=6), max_size=3)
        ),
    ),
    text=st.booleans(),
)
def test_judge_input(ws: Workspace, baseline: Any, canary: Any, text: bool) -> None:
    a, b = ws.root / "a.json", ws.root / "b.json"
    a.write_text(
        json.dumps(baseline) if not text else str(baseline),
        encoding="utf-8",
        errors="surrogatepass",
    )
    b.write_text(json.dumps(canary), encoding="utf-8", errors="surrogatepass")
    before = ws.snapshot()
    assert_handled(ws, ws.run("canary", "judge", "--baseline", str(a), "--canary", str(b)), before)


# --- base references
# --------------------------------------------------------------------------------
refs = st.one_of(
    names,
    st.tuples(
        st.sampled_from(["demo", "nope", "Demo", ""]), st.one_of(names, st.integers().map(str))
    ).map(lambda t: f"{t[0]}:{t[1]}"),
    st.sampled_from(
        ["demo:²", "demo:99999999999999999999", "demo:1\n", "demo:release", "ami-0abc1234", "demo:"]
    ),
)


@FUZZ
@given(ref=refs)
def test_base_references(ws: Workspace, ref: str) -> None:
    before = ws.snapshot()
    assert_handled(
        ws,
        ws.run("changelog", "show", "--", ref)
        if ref.startswith("-")
        else ws.run("changelog", "show", ref),
        before,
    )
