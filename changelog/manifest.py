"""Package manifests of a base image: read any form real tools write into a `Manifest`.

The form is told from the content, never from the file name:

* ``Package:`` first → a dpkg status file (``/var/lib/dpkg/status``).
* ``dpkg -l``'s header (``Desired=…``, ``||/ Name…``, ``+++-===``) or its ``ii  name  version``
  rows → ``dpkg -l`` output.
* one word a line → ``rpm -qa`` (``NAME-VERSION-RELEASE[.ARCH]``).
* tab-separated lines: ``dpkg-query -W`` (optionally ``-f`` with a third column of
  ``${Architecture}`` or ``${Source}``), an Ubuntu cloud-image ``.manifest`` with ``snap:`` lines,
  or ``rpm -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n'``.
* blank-separated ``name version`` lines: ``dpkg-query -W -f='${Package} ${Version}\n'``, or
  the same from ``rpm -qa --qf``. (The live-server ISO ``.manifest`` is tab-separated.)

A name/version list is Debian's or rpm's by the family's ``package_format`` (or
``--package-format``). Without one, an epoch of ``(none)`` says rpm; versions carrying Amazon
Linux / RHEL / Fedora release tags that are also valid Debian versions are ambiguous and refused,
naming both forms. A list of one format given for the other is refused, with the hint to fix.

The readers are in changelog/manifest_forms.py (dpkg) and changelog/rpm_forms.py (rpm), the
records in changelog/packages.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from changelog.manifest_forms import is_dpkg_list, read_dpkg_list, read_status, read_tab
from changelog.packages import Manifest, Package, Snap, validate_version
from changelog.rpm_forms import read_nevra, read_rpm_columns, rpm_evidence
from orchestrator.errors import ManifestError
from orchestrator.inputs import read_bounded

__all__ = [
    "LIST_FORMS",
    "Manifest",
    "Package",
    "Snap",
    "parse_manifest",
    "parse_manifest_bytes",
    "parse_manifest_text",
    "validate_version",
]


# The two readings of a name/version list, named in errors.
LIST_FORMS = (
    "dpkg-query -W (Debian: name, Debian version)",
    "rpm -qa --qf '%{NAME}\\t%{EPOCH}:%{VERSION}-%{RELEASE}\\n' (RPM: name, epoch:version-release)",
)
_FORMAT_HINT = (
    'set package_format = "{want}" in the family\'s [families.NAME] table, or give '
    "--package-format {want} to 'changelog diff' for manifest files"
)


def parse_manifest(path: str | Path, package_format: str | None = None) -> Manifest:
    """Read and parse a manifest file; the form is detected from its content."""
    p = Path(path)
    data = read_bounded(p, "manifest", error=ManifestError, noun="manifest file")
    return parse_manifest_bytes(data, str(p), package_format)


def parse_manifest_bytes(
    data: bytes, path: str = "<memory>", package_format: str | None = None
) -> Manifest:
    """Decode manifest bytes (UTF-8; a NUL byte means a binary file) and parse them."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ManifestError(f"{path}:{line}: binary data (NUL byte) in manifest")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
    return parse_manifest_text(text, path, package_format)


def _wrong_format(path: str, what: str, is_format: str, want: str) -> ManifestError:
    return ManifestError(
        f"{path}: {what} lists {is_format.upper()} packages, but the package format is {want}",
        hint=_FORMAT_HINT.format(want=is_format),
    )


def parse_manifest_text(
    text: str, path: str = "<memory>", package_format: str | None = None
) -> Manifest:
    """Parse manifest text, detecting the form from its content.

    ``package_format`` (``deb``, ``rpm`` or None for "tell from the content") is the family's;
    a manifest of the other format is refused, and so is a list that could be either.
    """
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    if first.startswith("Package:"):  # dpkg writes every status stanza Package-first
        if package_format == "rpm":
            raise _wrong_format(path, "a dpkg status file", "deb", "rpm")
        return read_status(lines, path)
    if is_dpkg_list(first):
        if package_format == "rpm":
            raise _wrong_format(path, "'dpkg -l' output", "deb", "rpm")
        return read_dpkg_list(lines, path)
    rows = [ln for ln in lines if ln.strip()]
    tabbed = any("\t" in ln for ln in rows)
    if not tabbed and all(len(ln.split()) == 1 for ln in rows):
        if package_format == "deb":
            raise _wrong_format(
                path, "'rpm -qa' output (NAME-VERSION-RELEASE.ARCH lines)", "rpm", "deb"
            )
        return read_nevra(lines, path)
    return _read_list(lines, path, package_format, tabbed=tabbed)


# What only a Debian list has: a snap line, an ':arch' qualifier (rpm names have no ':'), or the
# revision marks of Ubuntu and Debian builds.
_DEB_MARK = re.compile(r"ubuntu[0-9]|\+deb[0-9]+u|\+b[0-9]+$|build[0-9]+$|debian")


def _deb_evidence(lines: Sequence[str], tabbed: bool) -> tuple[int, str] | None:
    """The first line that only a Debian name/version list has, with its number."""
    for lineno, line in enumerate(lines, start=1):
        cols = line.split("\t") if tabbed else line.split()
        if len(cols) < 2:
            continue
        name, version = cols[0].strip(), cols[1].strip()
        if name.startswith("snap:") or ":" in name or _DEB_MARK.search(version):
            return lineno, line.strip()
    return None


def _read_list(
    lines: Sequence[str], path: str, package_format: str | None, *, tabbed: bool
) -> Manifest:
    """A name/version list, Debian's or rpm's (see the module docstring)."""
    if package_format == "rpm":
        debian = _deb_evidence(lines, tabbed)
        if debian is not None:
            lineno, shown = debian
            raise _wrong_format(
                path, f"this name/version list (line {lineno}: {shown[:60]!r})", "deb", "rpm"
            )
        return read_rpm_columns(lines, path, tabbed=tabbed)
    evidence = rpm_evidence(lines, tabbed)
    if evidence is not None:
        strength, lineno, shown = evidence
        if package_format == "deb":
            raise _wrong_format(
                path, f"this name/version list (line {lineno}: {shown[:60]!r})", "rpm", "deb"
            )
        if strength == "conclusive":
            return read_rpm_columns(lines, path, tabbed=tabbed)
        raise ManifestError(
            f"{path}: ambiguous manifest: a name/version list reads as {LIST_FORMS[0]} or as "
            f"{LIST_FORMS[1]}, and its versions carry RPM release tags that are also valid "
            f"Debian versions (line {lineno}: {shown[:60]!r})",
            hint="give --package-format rpm (or deb) for manifest files, or set the family's "
            "package_format",
        )
    return read_tab(lines, path, tabbed=tabbed)
