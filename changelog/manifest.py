"""Package manifests of a base image: read any form real tools write into a `Manifest`.

The form is told from the content, never from the file name:

* ``Package:`` first → a dpkg status file (``/var/lib/dpkg/status``).
* ``dpkg -l``'s header (``Desired=…``, ``||/ Name…``, ``+++-===``) or its ``ii  name  version``
  rows → ``dpkg -l`` output.
* anything else → tab-separated lines: ``dpkg-query -W`` (optionally ``-f`` with a third column of
  ``${Architecture}`` or ``${Source}``) or an Ubuntu cloud-image ``.manifest`` with ``snap:`` lines.

The readers are in changelog/manifest_forms.py, the records in changelog/packages.py.
"""

from __future__ import annotations

from pathlib import Path

from changelog.manifest_forms import is_dpkg_list, read_dpkg_list, read_status, read_tab
from changelog.packages import Manifest, Package, Snap, validate_version
from orchestrator.errors import ManifestError
from orchestrator.inputs import read_bounded

__all__ = [
    "Manifest",
    "Package",
    "Snap",
    "parse_manifest",
    "parse_manifest_bytes",
    "parse_manifest_text",
    "validate_version",
]


def parse_manifest(path: str | Path) -> Manifest:
    """Read and parse a manifest file; the form is detected from its content."""
    p = Path(path)
    data = read_bounded(p, "manifest", error=ManifestError, noun="manifest file")
    return parse_manifest_bytes(data, str(p))


def parse_manifest_bytes(data: bytes, path: str = "<memory>") -> Manifest:
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
    return parse_manifest_text(text, path)


def parse_manifest_text(text: str, path: str = "<memory>") -> Manifest:
    """Parse manifest text, detecting the form from its first non-blank line."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise ManifestError(f"{path}:1: empty manifest (no packages)")
    if first.startswith("Package:"):  # dpkg writes every status stanza Package-first
        return read_status(lines, path)
    if is_dpkg_list(first):
        return read_dpkg_list(lines, path)
    return read_tab(lines, path)
