"""The manifest forms real tools write, each read into a `Manifest`.

* `read_tab`: ``name<TAB>version`` lines (``dpkg-query -W``, an Ubuntu cloud-image ``.manifest``
  with its ``snap:`` lines), an optional ``:arch`` on the name, and an optional third column that
  is ``${Architecture}`` or ``${Source}``, told apart by content (`classify_third_column`).
* `read_dpkg_list`: ``dpkg -l`` output, header and all; installed rows only.
* `read_status`: a dpkg status file, parsed stanza by stanza with python-debian's deb822.

Every defect raises `ManifestError` naming the file and line: nothing is silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from changelog.architectures import is_architecture
from changelog.packages import (
    Manifest,
    Package,
    PackageCollector,
    Snap,
    parse_source,
    split_arch,
    validate_version,
)
from orchestrator.errors import ManifestError

__all__ = [
    "DPKG_LIST_ROW",
    "classify_third_column",
    "is_dpkg_list",
    "read_dpkg_list",
    "read_status",
    "read_tab",
]

_SNAP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SNAP_REVISION = re.compile(r"^x?[0-9]+$")  # "x1" is a locally installed, unasserted revision
_FIELD = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*):")
_STATUS_FIELDS = ["Package", "Status", "Version", "Source", "Architecture"]  # all the diff needs
# A `dpkg -l` row's state: desired (u i h r p), status (n c H U F W t i), optional error flag R.
DPKG_LIST_ROW = re.compile(r"^[uihrp][ncHUFWti]R?\s+\S")
_DPKG_LIST_HEADER = ("Desired=", "| Status=", "|/ Err?=", "||/ ", "+++-")


# --- name<TAB>version[<TAB>arch|source] --------------------------------------------------------
def classify_third_column(rows: Sequence[tuple[int, str]], path: str) -> str:
    """``"arch"`` when every non-empty third-column value is a dpkg architecture, else ``"source"``.

    ``rows`` are (line, value). Architectures and source names mixed in one column mean the file
    is not what either dpkg-query format writes, so that is an error naming the first odd line.
    """
    values = [(lineno, value) for lineno, value in rows if value]
    if not values:
        return "source"  # ${Source} is empty for every binary named like its source
    kinds = [(lineno, value, is_architecture(value)) for lineno, value in values]
    first_line, first_value, first_is_arch = kinds[0]
    for lineno, value, value_is_arch in kinds[1:]:
        if value_is_arch != first_is_arch:
            arch, source = (first_value, value) if first_is_arch else (value, first_value)
            raise ManifestError(
                f"{path}:{lineno}: third column mixes an architecture ({arch!r}) and a source "
                f"package ({source!r}); expected all ${{Architecture}} or all ${{Source}} "
                f"(line {first_line} says {first_value!r})"
            )
    return "arch" if first_is_arch else "source"


def _snap(cols: list[str], line: str, path: str, lineno: int) -> Snap:
    """``snap:NAME<TAB>REVISION``, or ``snap:NAME<TAB>CHANNEL<TAB>REVISION`` (livecd-rootfs)."""
    name = cols[0].strip()[len("snap:") :]
    rest = [c.strip() for c in cols[1:]]
    if not _SNAP_NAME.match(name) or len(rest) not in (1, 2) or not _SNAP_REVISION.match(rest[-1]):
        raise ManifestError(
            f"{path}:{lineno}: expected 'snap:NAME<TAB>[CHANNEL<TAB>]REVISION', got {line[:80]!r}"
        )
    return Snap(name, rest[-1], rest[0] if len(rest) == 2 else None)


def read_tab(lines: Sequence[str], path: str, *, tabbed: bool = True) -> Manifest:
    """Read the tab-separated forms; see the module docstring.

    Without ``tabbed`` the columns are split on blanks: ``dpkg-query -W -f='${Package}
    ${Version}\\n'`` (``name version``).
    """
    rows: list[tuple[int, list[str]]] = []
    snaps: dict[str, Snap] = {}
    sep = "<TAB>" if tabbed else " "
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t") if tabbed else line.split()
        if cols[0].strip().startswith("snap:"):
            snap = _snap(cols, line, path, lineno)
            if snap.name in snaps:
                raise ManifestError(f"{path}:{lineno}: snap {snap.name!r} listed again")
            snaps[snap.name] = snap
            continue
        if len(cols) < 2 or not cols[1].strip():
            raise ManifestError(
                f"{path}:{lineno}: expected 'package{sep}version', got {line[:80]!r}"
            )
        if len(cols) > 3:
            what = "tab-separated" if tabbed else "blank-separated"
            raise ManifestError(f"{path}:{lineno}: too many {what} columns ({len(cols)})")
        rows.append((lineno, cols))
    third = classify_third_column(
        [(lineno, cols[2].strip()) for lineno, cols in rows if len(cols) == 3], path
    )
    out = PackageCollector(path)
    for lineno, cols in rows:
        name, arch = split_arch(cols[0].strip(), path, lineno)
        version = validate_version(cols[1].strip(), path, lineno)
        source = source_version = None
        if len(cols) == 3 and third == "arch":
            arch = cols[2].strip()
        elif len(cols) == 3:
            source, source_version = parse_source(cols[2], path, lineno)
        out.add(Package(name, version, source, source_version, arch), lineno)
    if not out.packages and not snaps:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    has_third = any(len(cols) == 3 for _, cols in rows)
    form = "tab" if tabbed else "space"
    return Manifest(out.packages, snaps, path, f"{form}+{third}" if has_third else form)


# --- dpkg -l -------------------------------------------------------------------------------------
def is_dpkg_list(first_line: str) -> bool:
    """Whether a file starting with ``first_line`` is ``dpkg -l`` output (header or not)."""
    return first_line.startswith(_DPKG_LIST_HEADER) or (
        "\t" not in first_line and DPKG_LIST_ROW.match(first_line) is not None
    )


def read_dpkg_list(lines: Sequence[str], path: str) -> Manifest:
    """Read ``dpkg -l``: ``ii  name[:arch]  version  arch  description`` rows after the header.

    Only rows whose status letter is ``i`` (installed) count; ``un``/``rc`` rows are packages
    dpkg knows of but that are not on the image. Columns are split on whitespace: dpkg widens
    them to fit (names and versions never contain blanks), so widths need not be known.
    """
    out = PackageCollector(path)
    has_arch_column: bool | None = None  # known from the header; without one, from the row
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith(_DPKG_LIST_HEADER):
            if line.startswith("||/ "):
                has_arch_column = "Architecture" in line.split()
            continue
        fields = line.split(None, 4)
        if DPKG_LIST_ROW.match(line) is None or len(fields) < 3:
            raise ManifestError(
                f"{path}:{lineno}: expected a 'dpkg -l' row ('ii  name  version  arch  "
                f"description'), got {line[:80]!r}"
            )
        if fields[0][1] != "i":
            continue  # not installed: config files only, half-installed, unknown
        name, arch = split_arch(fields[1], path, lineno)
        version = validate_version(fields[2], path, lineno)
        arch_field = fields[3] if len(fields) > 3 else None
        guessed = has_arch_column is None and arch_field and is_architecture(arch_field)
        if has_arch_column or guessed:
            arch = arch_field
        out.add(Package(name, version, arch=arch), lineno)
    if not out.packages:
        raise ManifestError(f"{path}:1: no installed packages ('ii' rows) in dpkg -l output")
    return Manifest(out.packages, {}, path, "dpkg-l")


# --- /var/lib/dpkg/status --------------------------------------------------------------------
def _stanzas(lines: Sequence[str], path: str) -> Iterator[tuple[int, dict[str, int], list[str]]]:
    """Yield (first line, field → line, the stanza's lines) per RFC822 stanza, checking each line.

    deb822 skips lines it cannot read and keeps the last of a repeated field; a manifest must not
    be read past such damage, so the shape is checked here and the parsing left to deb822.
    """
    fields: dict[str, int] = {}
    chunk: list[str] = []
    start = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if chunk:
                yield start, fields, chunk
            fields, chunk = {}, []
            continue
        if line[0] in " \t":
            if not chunk:
                raise ManifestError(f"{path}:{lineno}: continuation line outside a field")
            chunk.append(line)
            continue
        m = _FIELD.match(line)
        if m is None:
            raise ManifestError(f"{path}:{lineno}: expected 'Field: value', got {line[:80]!r}")
        key = m.group("key").lower()
        if key in fields:
            raise ManifestError(f"{path}:{lineno}: field {m.group('key')!r} repeated in stanza")
        if not chunk:
            start = lineno
        fields[key] = lineno
        chunk.append(line)
    if chunk:
        yield start, fields, chunk


def _installed(status: str, path: str, lineno: int) -> bool:
    """``Status: want flag state``; installed means the state word is ``installed`` (any want)."""
    words = status.split()
    if len(words) != 3:
        raise ManifestError(f"{path}:{lineno}: invalid Status field {status[:80]!r}")
    return words[2] == "installed"


def read_status(lines: Sequence[str], path: str) -> Manifest:
    """Read a dpkg status file: installed packages with their Source and Architecture."""
    from debian.deb822 import Packages  # with its charset detection: only status files need it

    out = PackageCollector(path)
    for start, lines_of, chunk in _stanzas(lines, path):
        para = Packages(chunk, fields=_STATUS_FIELDS)
        if "package" not in lines_of:
            raise ManifestError(f"{path}:{start}: stanza without a Package field")
        if "status" not in lines_of:
            raise ManifestError(f"{path}:{start}: stanza without a Status field")
        if not _installed(para["Status"], path, lines_of["status"]):
            continue  # removed / half-installed / config-files: not part of the image
        name, _ = split_arch(para["Package"].strip(), path, lines_of["package"])
        if "version" not in lines_of:
            raise ManifestError(f"{path}:{start}: installed package {name!r} has no Version")
        version = validate_version(para["Version"].strip(), path, lines_of["version"])
        source, source_version = (None, None)
        if "source" in lines_of:
            source, source_version = parse_source(para["Source"], path, lines_of["source"])
        arch = para.get("Architecture", "").strip() or None
        out.add(Package(name, version, source, source_version, arch), lines_of["package"])
    if not out.packages:
        raise ManifestError(f"{path}:1: no installed packages in dpkg status file")
    return Manifest(out.packages, {}, path, "status")
