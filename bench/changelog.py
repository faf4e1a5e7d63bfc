"""Benchmarks for the changelog area, each against a naive baseline measured in the same run.

(a) diff of two synthetic 5,000-package manifests (~10% changed; epochs, tildes, +debNuM, +bN).
    Baseline: the obvious implementation — build a python-debian `Version` for every package on
    both sides and compare every pair, equal strings included. Also reported: dpkg's own
    ``dpkg --compare-versions`` (one subprocess per pair) timed on 200 pairs and extrapolated to
    5,000 — what a shell script doing this would cost.
(b) entries for 200 changed packages from local changelog.Debian.gz files (~50 entries each; the
    wanted range is the newest 3). Baseline: python-debian `Changelog` parsing the whole file, then
    filtering blocks by version.

Run: ``python -m bench.changelog``.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from debian.changelog import Changelog
from debian.debian_support import Version

from bench.measure import Figure, best_of, measure_process
from changelog.diff import diff
from changelog.manifest import Manifest, Package
from changelog.report import build_changelog
from changelog.sources import DirectorySource

__all__ = ["figures", "run", "synthetic_changelog", "synthetic_manifests"]

DIFF_TARGET = 0.5
ENTRIES_TARGET = 2.0


def _version(rng: random.Random) -> str:
    epoch = rng.choice(["", "", "", "1:", "2:"])
    upstream = ".".join(str(rng.randint(0, 40)) for _ in range(rng.randint(2, 3)))
    upstream += rng.choice(["", "", "~rc1", "~beta2", "+dfsg", "+ds1"])
    revision = rng.choice(["-1", "-2", "-3+b1", "-1+deb12u3", "-4~deb12u1", "-0ubuntu1"])
    return f"{epoch}{upstream}{revision}"


def _bump(version: str, rng: random.Random) -> str:
    """A realistic successor (or, one time in ten, predecessor) of ``version``."""
    choice = rng.random()
    if choice < 0.3:
        return version + "+b1"
    if choice < 0.6:
        return version + "+deb12u10"
    if choice < 0.9:
        return version + ".1"
    return version + "~rc0"


def synthetic_manifests(n: int, changed: float = 0.10, seed: int = 0) -> tuple[Manifest, Manifest]:
    """Two ``n``-package manifests, a fraction ``changed`` differing; a few added/removed."""
    rng = random.Random(seed)
    old: dict[str, Package] = {}
    new: dict[str, Package] = {}
    for i in range(n):
        name = f"pkg{i:05d}"
        version = _version(rng)
        old[name] = Package(name, version)
        new_version = _bump(version, rng) if rng.random() < changed else version
        new[name] = Package(name, new_version)
    for i in range(n // 200):  # 0.5% removed and added
        del new[f"pkg{i:05d}"]
        new[f"new{i:05d}"] = Package(f"new{i:05d}", "1.0-1")
    return Manifest(old, path="old"), Manifest(new, path="new")


def naive_diff(old: Manifest, new: Manifest) -> dict[str, list[str]]:
    """Baseline (a): a Version for every package on both sides, every pair compared."""
    out: dict[str, list[str]] = {"upgraded": [], "downgraded": [], "unchanged": []}
    old_v = {name: Version(p.version) for name, p in old.packages.items()}
    new_v = {name: Version(p.version) for name, p in new.packages.items()}
    for name, after in new_v.items():
        before = old_v.get(name)
        if before is None:
            continue
        key = "upgraded" if after > before else "downgraded" if after < before else "unchanged"
        out[key].append(name)
    return out


def dpkg_pairs_seconds(old: Manifest, new: Manifest, sample: int = 200) -> float | None:
    """Seconds ``dpkg --compare-versions`` needs for all common pairs (``sample`` timed)."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return None
    common = [n for n in new.packages if n in old.packages]
    start = time.perf_counter()
    for name in common[:sample]:
        subprocess.run(
            [dpkg, "--compare-versions", new[name].version, "gt", old[name].version], check=False
        )
    return (time.perf_counter() - start) / min(sample, len(common)) * len(common)


def synthetic_changelog(package: str, entries: int, seed: int) -> tuple[str, list[str]]:
    """A changelog with ``entries`` entries, newest first; returns (text, versions newest first)."""
    rng = random.Random(seed)
    versions = [f"1.{entries - i}-1" for i in range(entries)]
    blocks = []
    for i, version in enumerate(versions):
        changes = "\n".join(
            f"  * Fix issue #{rng.randint(1000, 99999)} in module {rng.choice('abcdef')}"
            + (f" (CVE-2024-{rng.randint(1000, 60000)})" if rng.random() < 0.2 else "")
            + ".\n    Longer explanation of the change wrapped onto a second line."
            for _ in range(rng.randint(3, 8))
        )
        blocks.append(
            f"{package} ({version}) unstable; urgency=medium\n\n{changes}\n\n"
            f" -- Jane Maintainer <jane@example.org>  "
            f"Mon, {1 + i % 28:02d} Jan 2024 12:00:00 +0000\n"
        )
    return "\n".join(blocks), versions


def _best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _record(
    name: str, seconds: float, baseline: float | None, target: float, note: str
) -> dict[str, Any]:
    return {
        "name": name,
        "seconds": round(seconds, 4),
        "baseline_seconds": None if baseline is None else round(baseline, 4),
        "ratio": None if baseline is None else round(baseline / seconds, 1),
        "target": target,
        "baseline": note,
    }


def run() -> list[dict[str, Any]]:
    """Run both benchmarks; one flat record per measurement."""
    results = []
    old, new = synthetic_manifests(5000, changed=0.10, seed=1)
    ours = _best_of(lambda: diff(old, new))
    naive = _best_of(lambda: naive_diff(old, new))
    results.append(
        _record(
            "diff 5000 pkgs (10% changed)",
            ours,
            naive,
            DIFF_TARGET,
            "Version() for every package, every pair compared",
        )
    )
    dpkg_seconds = dpkg_pairs_seconds(old, new)
    if dpkg_seconds is not None:
        results.append(
            _record(
                "diff 5000 pkgs (10% changed)",
                ours,
                dpkg_seconds,
                DIFF_TARGET,
                "dpkg --compare-versions per pair (200 timed, extrapolated)",
            )
        )

    with tempfile.TemporaryDirectory(prefix="imagefleet-bench-") as tmp:
        root = Path(tmp)
        old_pkgs, new_pkgs = {}, {}
        for i in range(200):
            name = f"pkg{i:03d}"
            text, versions = synthetic_changelog(name, 50, seed=i)
            with gzip.open(root / f"{name}.changelog.Debian.gz", "wt", encoding="utf-8") as fh:
                fh.write(text)
            old_pkgs[name] = Package(name, versions[3])
            new_pkgs[name] = Package(name, versions[0])
        old_m, new_m = Manifest(old_pkgs, path="old"), Manifest(new_pkgs, path="new")
        source = DirectorySource(root)

        def naive_entries() -> None:
            for name, old_pkg in old_pkgs.items():
                low, high = Version(old_pkg.version), Version(new_pkgs[name].version)
                with gzip.open(root / f"{name}.changelog.Debian.gz", "rt", encoding="utf-8") as fh:
                    parsed = Changelog(fh)
                [b for b in parsed if low < b.version <= high]

        ours = _best_of(lambda: build_changelog(old_m, new_m, source))
        naive = _best_of(naive_entries)
        results.append(
            _record(
                "entries 200 pkgs x 50 entries",
                ours,
                naive,
                ENTRIES_TARGET,
                "python-debian Changelog over each whole file, then filter",
            )
        )
    return results


# What a user would write instead of `imagefleet changelog diff`: python-debian, ten lines.
BASELINE_SCRIPT = """
import sys
from debian.debian_support import Version
def read(path):
    return dict(line.split("\\t")[:2] for line in open(path) if "\\t" in line)
old, new = read(sys.argv[1]), read(sys.argv[2])
changed = [n for n in new if n in old and Version(new[n]) != Version(old[n])]
print(len(changed), len(set(new) - set(old)), len(set(old) - set(new)))
"""
END_TO_END_GOAL_S, END_TO_END_GOAL_RATIO = 0.5, 5.0


def _write_manifest(manifest: Manifest, path: Path) -> Path:
    """``dpkg-query -W`` form: one ``name<TAB>version`` line per package."""
    path.write_text("".join(f"{p.name}\t{p.version}\n" for p in manifest.packages.values()))
    return path


def figures() -> list[Figure]:
    """The record's rows: ``changelog diff`` end to end (a fresh ``imagefleet`` process) against
    the python-debian script, and the diff alone against the naive in-process diff."""
    old, new = synthetic_manifests(5000, changed=0.10, seed=1)
    with tempfile.TemporaryDirectory(prefix="imagefleet-bench-") as tmp:
        a = _write_manifest(old, Path(tmp) / "old.tsv")
        b = _write_manifest(new, Path(tmp) / "new.tsv")
        ours = best_of(
            lambda: measure_process(
                [
                    sys.executable,
                    "-m",
                    "imagefleet.cli",
                    "changelog",
                    "diff",
                    str(a),
                    str(b),
                    "--format",
                    "json",
                ]
            ),
            3,
            warmup=1,
        )
        base = best_of(
            lambda: measure_process([sys.executable, "-c", BASELINE_SCRIPT, str(a), str(b)]),
            3,
            warmup=1,
        )
    ratio = ours.seconds / base.seconds
    diff_row = run_diff_only(old, new)[0]
    return [
        Figure(
            "changelog diff, 2 x 5,000 packages, end to end",
            round(ours.seconds, 3),
            "s",
            round(base.seconds, 3),
            "10-line python-debian script",
            goal=f"<= {END_TO_END_GOAL_S} s and <= {END_TO_END_GOAL_RATIO:g}x the script",
            met=ours.seconds <= END_TO_END_GOAL_S and ratio <= END_TO_END_GOAL_RATIO,
            detail={
                "cpu_seconds": round(ours.cpu_seconds, 3),
                "peak_mb": round(ours.peak_mb),
                "baseline_cpu_seconds": round(base.cpu_seconds, 3),
            },
        ),
        Figure(
            "changelog diff, the diff alone (in process)",
            diff_row["seconds"],
            "s",
            diff_row["baseline_seconds"],
            diff_row["baseline"],
            goal=f"< {DIFF_TARGET} s",
            met=diff_row["seconds"] < DIFF_TARGET,
        ),
    ]


def run_diff_only(old: Manifest, new: Manifest) -> list[dict[str, Any]]:
    """The in-process diff against the naive diff, best of three each."""
    ours = _best_of(lambda: diff(old, new))
    naive = _best_of(lambda: naive_diff(old, new))
    return [
        _record(
            "diff 5000 pkgs (10% changed)",
            ours,
            naive,
            DIFF_TARGET,
            "Version() for every package, every pair compared",
        )
    ]


def main() -> None:
    rows = run()
    header = f"{'benchmark':32} {'seconds':>9} {'baseline':>9} {'ratio':>7} {'target':>7}  baseline"
    print(header)
    print("-" * len(header))
    for r in rows:
        base = "-" if r["baseline_seconds"] is None else f"{r['baseline_seconds']:.4f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']}x"
        ok = "ok" if r["seconds"] < r["target"] else "MISSED"
        print(
            f"{r['name']:32} {r['seconds']:9.4f} {base:>9} {ratio:>7} {r['target']:>6}s  "
            f"{r['baseline']} [{ok}]"
        )


if __name__ == "__main__":
    main()
