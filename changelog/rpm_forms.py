"""The manifest forms rpm writes, each read into a `Manifest` whose ``package_format`` is ``rpm``.

* `read_nevra`: ``rpm -qa`` — one ``NAME-VERSION-RELEASE[.ARCH]`` per line (``%{NEVRA}``'s
  ``NAME-EPOCH:VERSION-RELEASE.ARCH`` and yum's ``EPOCH:NAME-VERSION-RELEASE.ARCH`` too). The arch
  is taken off only when it is an rpm architecture name, so ``gpg-pubkey-d832c631-6515c85e``
  (no arch) reads as version ``d832c631-6515c85e``.
* `read_rpm_columns`: ``rpm -qa --qf '%{NAME}\\t%{EPOCH}:%{VERSION}-%{RELEASE}\\n'`` (epoch
  ``(none)`` when unset) and name/version lists such as Amazon Linux's published package lists;
  columns split on a tab, or on blanks when the file has no tab. An optional third column is the
  arch or ``%{SOURCERPM}`` (``bash-5.2.15-1.amzn2023.0.2.src.rpm``), which groups binaries of
  one source.

A package installed in several versions (``kernel``, ``gpg-pubkey``) is kept at the newest.
Versions are kept as ``[EPOCH:]VERSION[-RELEASE]`` (no epoch when rpm says ``(none)``) and
ordered by `changelog.versions.rpm_compare`. Every defect raises `ManifestError` naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from changelog.packages import Manifest, Package
from changelog.versions import rpm_compare
from orchestrator.errors import ManifestError

__all__ = [
    "RPM_ARCHES",
    "parse_nevra",
    "read_nevra",
    "read_rpm_columns",
    "rpm_evidence",
    "validate_evr",
]

# rpm's architecture names (rpmrc's arch_canon and what AL2023 / RHEL / Fedora ship).
RPM_ARCHES = frozenset(
    [
        "noarch",
        "x86_64",
        "aarch64",
        "i386",
        "i486",
        "i586",
        "i686",
        "athlon",
        "ppc",
        "ppc64",
        "ppc64le",
        "ppc64p7",
        "s390",
        "s390x",
        "armv7hl",
        "armv7hnl",
        "armv6hl",
        "armhfp",
        "riscv64",
        "loongarch64",
        "ia64",
        "src",
        "nosrc",
    ]
)
_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$")
_PART = r"[A-Za-z0-9._+~^]+"  # what rpm accepts in a version or release (no '-', no ':')
_EVR = re.compile(
    rf"^(?:(?P<epoch>[0-9]+|\(none\)):)?(?P<version>{_PART})(?:-(?P<release>{_PART}))?$"
)
_SOURCE_RPM = re.compile(
    rf"^(?P<name>.+)-(?P<version>{_PART})-(?P<release>{_PART})\.(?:no)?src\.rpm$"
)
# Release tags Amazon Linux, RHEL and its rebuilds, and Fedora put in every release.
_DIST_TAG = re.compile(r"\.(?:amzn|el|fc|module\+el)[0-9]")


def validate_evr(text: str, path: str, lineno: int) -> str:
    """``[EPOCH:]VERSION[-RELEASE]`` as kept: an epoch of ``(none)`` (rpm's unset) is dropped."""
    m = _EVR.match(text)
    if m is None:
        raise ManifestError(f"{path}:{lineno}: invalid RPM version {text[:80]!r}")
    epoch = m.group("epoch")
    return text.split(":", 1)[1] if epoch == "(none)" else text


def _name(text: str, path: str, lineno: int) -> str:
    if not _NAME.match(text):
        raise ManifestError(f"{path}:{lineno}: invalid RPM package name {text[:80]!r}")
    return text


def parse_nevra(text: str, path: str, lineno: int) -> Package:
    """One ``rpm -qa`` line: ``[E:]NAME-[E:]VERSION-RELEASE[.ARCH]``."""
    rest, arch = text, None
    head, dot, tail = text.rpartition(".")
    if dot and tail in RPM_ARCHES:
        rest, arch = head, tail
    epoch = None
    lead = re.match(r"^([0-9]+):(.*)$", rest)  # yum's E:N-V-R.A
    if lead:
        epoch, rest = lead.group(1), lead.group(2)
    parts = rest.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ManifestError(
            f"{path}:{lineno}: expected an 'rpm -qa' line (NAME-VERSION-RELEASE[.ARCH]), "
            f"got {text[:80]!r}"
        )
    name, version, release = parts
    if ":" in version:  # %{NEVRA}: N-E:V-R.A
        if epoch is not None:
            raise ManifestError(f"{path}:{lineno}: two epochs in {text[:80]!r}")
        epoch, version = version.split(":", 1)
    evr = f"{epoch}:{version}-{release}" if epoch is not None else f"{version}-{release}"
    return Package(_name(name, path, lineno), validate_evr(evr, path, lineno), arch=arch)


class RpmCollector:
    """One record per package name. rpm installs some packages in several versions at once
    (install-only packages: ``kernel``, ``kernel-core``, ``gpg-pubkey``); the newest is kept and
    compared, as ``dnf``'s "installed" view shows the running set's latest."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.packages: dict[str, Package] = {}

    def add(self, pkg: Package, lineno: int) -> None:
        seen = self.packages.get(pkg.name)
        if seen is None or rpm_compare(pkg.version, seen.version) > 0:
            self.packages[pkg.name] = pkg


def read_nevra(lines: Sequence[str], path: str) -> Manifest:
    """Read ``rpm -qa`` output (see the module docstring)."""
    out = RpmCollector(path)
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if text:
            out.add(parse_nevra(text, path, lineno), lineno)
    if not out.packages:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    return Manifest(out.packages, {}, path, "rpm-qa", package_format="rpm")


def _third(value: str, path: str, lineno: int) -> tuple[str | None, str | None]:
    """The third column: (arch, source name)."""
    if value in RPM_ARCHES or value == "(none)":
        return (None if value == "(none)" else value), None
    m = _SOURCE_RPM.match(value)
    if m is None:
        raise ManifestError(
            f"{path}:{lineno}: third column {value[:80]!r} is neither an rpm architecture nor a "
            "source rpm (NAME-VERSION-RELEASE.src.rpm)"
        )
    return None, m.group("name")


def split_columns(line: str, tabbed: bool) -> list[str]:
    """A line's columns: split on tabs in a tab-separated file, else on blanks."""
    return [c.strip() for c in line.split("\t")] if tabbed else line.split()


def read_rpm_columns(lines: Sequence[str], path: str, *, tabbed: bool) -> Manifest:
    """Read ``NAME<sep>[EPOCH:]VERSION[-RELEASE][<sep>ARCH|SOURCERPM]`` lines."""
    out = RpmCollector(path)
    sep = "<TAB>" if tabbed else " "
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = split_columns(line, tabbed)
        if len(cols) not in (2, 3) or not cols[1]:
            raise ManifestError(
                f"{path}:{lineno}: expected 'name{sep}version[{sep}arch|sourcerpm]', "
                f"got {line[:80]!r}"
            )
        arch, source = _third(cols[2], path, lineno) if len(cols) == 3 else (None, None)
        version = validate_evr(cols[1], path, lineno)
        out.add(Package(_name(cols[0], path, lineno), version, source, None, arch), lineno)
    if not out.packages:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    form = "rpm-qf" if tabbed else "rpm-qf-space"
    return Manifest(out.packages, {}, path, form, package_format="rpm")


def rpm_evidence(lines: Sequence[str], tabbed: bool) -> tuple[str, int, str] | None:
    """Why a name/version list looks like rpm's: (``"conclusive"``|``"likely"``, line, text).

    Conclusive: an epoch of ``(none)`` (no Debian version has parentheses) or a source rpm in the
    third column. Likely: a release tag of Amazon Linux, RHEL or Fedora (``.amzn2023``, ``.el9``,
    ``.fc40``) in a version that is otherwise also a valid Debian version.
    """
    likely: tuple[str, int, str] | None = None
    for lineno, line in enumerate(lines, start=1):
        cols = split_columns(line, tabbed)
        if len(cols) < 2:
            continue
        if cols[1].startswith("(none):") or (len(cols) == 3 and cols[2].endswith(".src.rpm")):
            return "conclusive", lineno, line.strip()
        if likely is None and _DIST_TAG.search(cols[1]):
            likely = ("likely", lineno, line.strip())
    return likely
