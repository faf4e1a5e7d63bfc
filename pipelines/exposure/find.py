"""Where does a package run: the bases that carry it (at a version below a bound, or without a CVE's
fix), the stages and friend teams pointing at them, and the groups whose instances run them.

Pure: it takes the store's bases, stage pointers and friend teams and what fleet discovery found,
as plain data, and returns an `Exposure`. Each base's manifest is parsed once (`Manifests`, keyed by
the base's reference) and groups are indexed by AMI, so the answer costs one pass over the groups
however many there are, and one parse per base however many groups run it.

A CVE's fix is known from the changelogs recorded when each base was baked
(``changelog.records.CveFix``: the CVE, the binary package, the first version carrying the fix).
A base is exposed to a CVE its family's changelogs recorded as fixed when it carries that binary at
a version ordered below the fix (the family's package order: dpkg's for deb, rpmvercmp's for rpm;
the earliest fixing version when several changelogs recorded it). A base without a readable
manifest cannot be read for versions: it is counted exposed when it is older than a base whose
changelog recorded the fix, and listed as unknown otherwise. Only the family's own changelogs
count: version strings of different distributions do not order against each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

from changelog.manifest import Manifest, Package, parse_manifest_text
from changelog.records import CveFix, summaries
from changelog.versions import compare_versions
from orchestrator.errors import ManifestError
from orchestrator.store import BaseVersion
from pipelines.fleet.view import DiscoveredGroup

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
FRIENDS_STAGE = "candidate"  # friend teams launch their family's candidate (pipelines.friends)


@dataclass(frozen=True)
class Query:
    """What is asked: PACKAGE (a binary, or a source package's binaries), optionally only below
    version ``below`` or only without the fix of ``cve``."""

    package: str
    below: str | None = None
    cve: str | None = None


@dataclass(frozen=True)
class Installed:
    """One binary of the package in a base, at the version compared (its source's version when
    the package was named by its source)."""

    package: str
    version: str


@dataclass(frozen=True)
class GroupHit:
    """A group's instances that run one base."""

    account: str
    region: str
    group: str
    instances: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "region": self.region,
            "group": self.group,
            "instances": self.instances,
        }


@dataclass(frozen=True)
class BaseHit:
    """A base that matches the query: what it carries, why it matches, who points at it and which
    groups run it."""

    ref: str
    family: str
    version: int
    retired: bool
    installed: tuple[Installed, ...]
    reason: str
    stages: tuple[str, ...] = ()
    friends: tuple[str, ...] = ()
    groups: tuple[GroupHit, ...] = ()

    @property
    def instances(self) -> int:
        return sum(g.instances for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "family": self.family,
            "version": self.version,
            "retired": self.retired,
            "installed": [{"package": i.package, "version": i.version} for i in self.installed],
            "reason": self.reason,
            "stages": list(self.stages),
            "friends": list(self.friends),
            "instances": self.instances,
            "groups": [g.to_dict() for g in self.groups],
        }


@dataclass(frozen=True)
class Exposure:
    """The answer: matching bases (newest of each family first), bases that could not be judged,
    and the instances on AMIs no base in the store has."""

    query: Query
    bases: tuple[BaseHit, ...]
    unknown: tuple[tuple[str, str], ...] = ()  # (ref, why it was not judged)
    unmanaged_instances: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def exposed(self) -> bool:
        """Anything exposed: a base still in use (not retired), or a group running any match."""
        return any(not b.retired or b.groups for b in self.bases)

    def totals(self) -> dict[str, int]:
        groups = {(g.account, g.region, g.group) for b in self.bases for g in b.groups}
        return {
            "bases": len(self.bases),
            "bases_in_use": sum(not b.retired for b in self.bases),
            "groups": len(groups),
            "instances": sum(b.instances for b in self.bases),
            "unmanaged_instances": self.unmanaged_instances,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.query.package,
            "version_below": self.query.below,
            "cve": self.query.cve,
            "exposed": self.exposed,
            "bases": [b.to_dict() for b in self.bases],
            "stages": [
                {"family": b.family, "stage": s, "ref": b.ref} for b in self.bases for s in b.stages
            ],
            "friends": [
                {"team": t, "family": b.family, "ref": b.ref} for b in self.bases for t in b.friends
            ],
            "groups": [g.to_dict() | {"ref": b.ref} for b in self.bases for g in b.groups],
            "unknown": [{"ref": r, "reason": why} for r, why in self.unknown],
            "totals": self.totals(),
            "notes": list(self.notes),
        }


class Manifests:
    """Each base's manifest parsed once, keyed by the base's reference, with an index of its
    binaries by source package; a manifest that is missing or unreadable is remembered as such."""

    def __init__(self) -> None:
        self._parsed: dict[str, Manifest | str] = {}
        self._by_source: dict[str, dict[str, list[Package]]] = {}

    def get(self, base: BaseVersion, package_format: str | None) -> Manifest | str:
        """The base's manifest, or why there is none."""
        found = self._parsed.get(base.ref)
        if found is None:
            found = self._parsed[base.ref] = read_manifest(base, package_format)
        return found

    def matching(self, base: BaseVersion, package_format: str | None, name: str) -> list[Installed]:
        """The binaries of ``name`` in the base: the binary so named, else those built from the
        source package so named (compared at their source's version)."""
        manifest = self.get(base, package_format)
        if isinstance(manifest, str):
            return []
        pkg = manifest.packages.get(name)
        if pkg is not None:
            return [Installed(pkg.name, pkg.version)]
        index = self._by_source.get(base.ref)
        if index is None:
            index = self._by_source[base.ref] = {}
            for p in manifest.packages.values():
                if p.source:
                    index.setdefault(p.source, []).append(p)
        return [Installed(p.name, p.source_version or p.version) for p in index.get(name, ())]


def read_manifest(base: BaseVersion, package_format: str | None) -> Manifest | str:
    """Parse the base's stored manifest in its family's format (``None``: told from the content,
    rpm when a name/version list is ambiguous); a string says why there is none."""
    if not base.manifest.strip():
        return "no manifest recorded"
    try:
        return parse_manifest_text(base.manifest, f"{base.ref} manifest", package_format)
    except ManifestError as exc:
        if package_format is None:
            try:
                return parse_manifest_text(base.manifest, f"{base.ref} manifest", "rpm")
            except ManifestError:
                pass
        return f"manifest unreadable: {exc.message}"


@dataclass(frozen=True)
class RecordedFix:
    """A fix a base's changelog recorded: the base that recorded it and the fix."""

    recorded_by: int
    fix: CveFix


def fix_index(bases: Iterable[BaseVersion]) -> dict[str, dict[str, list[RecordedFix]]]:
    """family -> CVE -> every fix its bases' changelogs recorded (against parent and release)."""
    out: dict[str, dict[str, list[RecordedFix]]] = {}
    for base in bases:
        for summary in summaries(base.changelog).values():
            for fix in summary.fixes:
                out.setdefault(base.family, {}).setdefault(fix.cve, []).append(
                    RecordedFix(base.version, fix)
                )
    return out


def first_fixed(records: Sequence[RecordedFix], package: str, package_format: str) -> str | None:
    """The lowest version recorded as fixing the CVE in binary ``package``."""
    versions = [r.fix.version for r in records if r.fix.package == package]
    if not versions:
        return None

    def order(a: str, b: str) -> int:
        return compare_versions(package_format, a, b)

    return min(versions, key=cmp_to_key(order))


def judge_cve(
    base: BaseVersion,
    installed: Sequence[Installed],
    manifest_known: bool,
    records: Sequence[RecordedFix],
    package_format: str,
) -> str | None:
    """Why ``base`` is exposed to the CVE whose fixes are ``records`` (its family's), or None.

    With a manifest, versions decide: a binary below the first version recorded as fixing it.
    Without one, age decides: older than a base whose changelog recorded the fix."""
    if not manifest_known:
        newer = sorted(r.recorded_by for r in records if r.recorded_by > base.version)
        if newer:
            return (
                f"no readable manifest; older than {base.family}:{newer[0]}, whose changelog "
                "recorded the fix"
            )
        return None
    reasons = []
    for item in installed:
        fixed = first_fixed(records, item.package, package_format)
        if fixed is not None and compare_versions(package_format, item.version, fixed) < 0:
            by = min(
                r.recorded_by
                for r in records
                if r.fix.package == item.package and r.fix.version == fixed
            )
            reasons.append(f"{item.package} {item.version} < {fixed} (fixed in {base.family}:{by})")
    return "; ".join(reasons) or None


def _match(
    base: BaseVersion,
    query: Query,
    installed: list[Installed],
    manifest_known: bool,
    fixes: Mapping[str, Mapping[str, list[RecordedFix]]],
    package_format: str,
) -> str | None:
    """Why ``base`` matches ``query``, or None."""
    if query.cve is not None:
        records = [
            r
            for r in fixes.get(base.family, {}).get(query.cve, [])
            if not manifest_known or any(r.fix.package == i.package for i in installed)
        ]
        if not manifest_known:  # only records naming the package by its binary name
            records = [r for r in records if r.fix.package == query.package]
        return (
            judge_cve(base, installed, manifest_known, records, package_format) if records else None
        )
    if not installed:
        return None
    if query.below is None:
        return "carries " + ", ".join(f"{i.package} {i.version}" for i in installed)
    below = [i for i in installed if compare_versions(package_format, i.version, query.below) < 0]
    return ", ".join(f"{i.package} {i.version} < {query.below}" for i in below) if below else None


def group_index(
    groups: Iterable[DiscoveredGroup], bases: Iterable[BaseVersion]
) -> tuple[dict[str, list[GroupHit]], int]:
    """base ref -> the groups running it (instances of every AMI of the base summed per group),
    and the instances on AMIs no base has."""
    by_ami = {ami: b.ref for b in bases for ami in b.all_amis()}
    hits: dict[str, dict[tuple[str, str, str], int]] = {}
    unmanaged = 0
    for g in groups:
        for ami, n in g.amis.items():
            ref = by_ami.get(ami)
            if ref is None:
                unmanaged += n
                continue
            per = hits.setdefault(ref, {})
            key = (g.account, g.region, g.name)
            per[key] = per.get(key, 0) + n
    return {
        ref: [GroupHit(a, r, name, n) for (a, r, name), n in sorted(per.items())]
        for ref, per in hits.items()
    }, unmanaged


def find(
    query: Query,
    bases: Sequence[BaseVersion],
    groups: Iterable[DiscoveredGroup],
    *,
    formats: Mapping[str, str],
    pointers: Mapping[tuple[str, str], int],
    friends: Mapping[str, Sequence[str]],
    manifests: Manifests | None = None,
) -> Exposure:
    """The bases matching ``query`` and everything pointing at or running them.

    ``formats``: family -> package format (a family not in it: told from the manifest);
    ``pointers``: (family, stage) -> version; ``friends``: team -> the families it follows
    (empty: every family)."""
    manifests = manifests or Manifests()
    fixes = fix_index(bases) if query.cve is not None else {}
    running, unmanaged = group_index(groups, bases)
    hits: list[BaseHit] = []
    unknown: list[tuple[str, str]] = []
    for base in sorted(bases, key=lambda b: (b.family, -b.version)):
        fmt = formats.get(base.family)
        if base.manifest.strip() and query.package not in base.manifest:
            # a manifest whose text never names the package cannot list it: no parse needed
            parsed: Manifest | str | None = None
            installed: list[Installed] = []
        else:
            parsed = manifests.get(base, fmt)
            installed = manifests.matching(base, fmt, query.package)
        known = not isinstance(parsed, str)
        order = fmt or (parsed.package_format if isinstance(parsed, Manifest) else "deb")
        reason = _match(base, query, installed, known, fixes, order)
        if reason is None:
            if isinstance(parsed, str):
                unknown.append((base.ref, parsed))
            continue
        stages = tuple(
            s
            for (fam, s), v in sorted(pointers.items())
            if fam == base.family and v == base.version
        )
        teams = (
            tuple(t for t, fams in sorted(friends.items()) if not fams or base.family in fams)
            if FRIENDS_STAGE in stages
            else ()
        )
        hits.append(
            BaseHit(
                base.ref,
                base.family,
                base.version,
                base.retired,
                tuple(installed),
                reason,
                stages,
                teams,
                tuple(running.get(base.ref, ())),
            )
        )
    notes = []
    if not any(
        query.package in b.manifest and manifests.matching(b, formats.get(b.family), query.package)
        for b in bases
    ):
        notes.append(f"no base's manifest carries a package named {query.package}")
    if query.cve is not None and not any(query.cve in per for per in fixes.values()):
        notes.append(f"no recorded changelog names {query.cve} as fixed")
    return Exposure(query, tuple(hits), tuple(unknown), unmanaged, tuple(notes))
