"""How much the slim benchmark agent installs, against the full imagefleet package (`make bench`).

Offline and in a second: each distribution's requirements are followed through the installed
metadata of the running environment (``importlib.metadata``, markers evaluated for this Python),
and each distribution's size is the sum of the files its ``RECORD`` lists (bytecode included, as
pip compiles it at install). The agent's requirements come from ``agent/pyproject.toml``,
imagefleet's from its ``[project] dependencies`` with **no extras**: ``local`` (moto), ``lint`` and
``test`` are what a developer adds, not what a benchmark instance or an operator installs (the
size with ``local`` is in the figure's details, for comparison with an install that has it).

The closure holds dependencies only: the two distributions' own modules (well under 1 MB for the
agent) and the interpreter and pip of the venv are not counted, so the figures are smaller than a
``du`` of a fresh venv (docs/perf.md has that measurement).

Run: ``python -m bench.install_size``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.measure import REPO_ROOT, Figure

__all__ = ["HEAVY", "Closure", "closure", "figures", "requirements_of"]

# What the agent must never pull onto a benchmark instance (docs/perf.md, "Installing the agent").
HEAVY = ("scipy", "pandas", "matplotlib", "moto")
MB = 1e6


@dataclass(frozen=True)
class Closure:
    """A set of requirements resolved against the installed distributions."""

    sizes: dict[str, int]  # canonical distribution name -> bytes its RECORD lists
    missing: tuple[str, ...]  # required but not installed here (not counted)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    def heavy(self, names: Iterable[str] = HEAVY) -> list[str]:
        """Which of ``names`` the closure holds."""
        return [n for n in names if canonicalize_name(n) in self.sizes]


def requirements_of(pyproject: Path, extras: Iterable[str] = ()) -> list[str]:
    """The ``[project] dependencies`` of a pyproject.toml, plus those of the ``extras`` named."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    return [*project.get("dependencies", []), *(r for extra in extras for r in optional[extra])]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``req``'s marker holds on this Python for a parent installed with ``extras``."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in (extras or {""}))


def _record_bytes(dist: metadata.Distribution) -> int:
    """The bytes of every file ``dist`` installed that is still on disk."""
    total = 0
    for file in dist.files or ():
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def closure(requirements: Iterable[str]) -> Closure:
    """Every distribution ``requirements`` pull in, transitively, with its installed size."""
    sizes: dict[str, int] = {}
    missing: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(Requirement(r), frozenset[str]()) for r in requirements]
    while pending:
        req, parent_extras = pending.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if not _applies(req, parent_extras) or key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(key[0])
            continue
        sizes.setdefault(key[0], _record_bytes(dist))
        pending += [(Requirement(r), key[1]) for r in dist.requires or ()]
    return Closure(sizes, tuple(sorted(set(missing))))


def figures() -> list[Figure]:
    """The agent's installed dependencies against imagefleet's, and whether any heavy one is in."""
    agent = closure(requirements_of(REPO_ROOT / "agent" / "pyproject.toml"))
    full = closure(requirements_of(REPO_ROOT / "pyproject.toml"))
    with_local = closure(requirements_of(REPO_ROOT / "pyproject.toml", ["local"]))
    heavy = agent.heavy()
    return [
        Figure(
            "agent install size (dependency closure)",
            round(agent.total_bytes / MB, 1),
            "MB",
            round(full.total_bytes / MB, 1),
            "imagefleet, core dependencies (no extras)",
            clock="count",
            goal=f"installs no {', '.join(HEAVY)}",
            met=not heavy,
            detail={
                "packages": len(agent.sizes),
                "baseline_packages": len(full.sizes),
                "heavy_in_agent": heavy,
                "heavy_in_baseline": full.heavy(),
                "extras_included": [],
                "missing": sorted({*agent.missing, *full.missing}),
                "baseline_with_local_extra_mb": round(with_local.total_bytes / MB, 1),
                "baseline_with_local_extra_packages": len(with_local.sizes),
                "agent_distributions": sorted(agent.sizes),
            },
        ),
    ]


def main() -> None:
    for f in figures():
        d = f.detail
        print(
            f"{f.name}: {f.value:,.1f} MB in {d['packages']} distributions | {f.baseline_label}: "
            f"{f.baseline:,.1f} MB in {d['baseline_packages']} | heavy in the agent: "
            f"{', '.join(d['heavy_in_agent']) or 'none'} (in imagefleet: "
            f"{', '.join(d['heavy_in_baseline'])}); "
            f"imagefleet[local]: {d['baseline_with_local_extra_mb']:,.1f} MB in "
            f"{d['baseline_with_local_extra_packages']}"
        )


if __name__ == "__main__":
    main()
