"""Where changelog text comes from: a `ChangelogSource` finds a package's Debian changelog.

Non-native packages keep it in ``changelog.Debian.gz``; native ones (apt, dpkg, debconf,
ca-certificates…) in ``changelog.gz``, a name non-native packages use for upstream's changelog.
So every ``changelog.Debian`` candidate is tried first, and a ``changelog`` file counts only when
its first line is a Debian changelog header.

Implementations:

* `DirectorySource(DIR)` — ``DIR/<name>.changelog.Debian.gz``, ``DIR/<name>.changelog.Debian``,
  then the image tree ``DIR/usr/share/doc/<name>/changelog.Debian.gz`` (and the uncompressed
  file), for each binary name of the group and then the source name; then the same with
  ``changelog`` for native packages.
* `ArchiveSource` — ``apt-get download name=version`` into a temp dir, then the changelog out of
  the .deb via ``dpkg-deb --fsys-tarfile``. Any failure is a reason, never a crash.
* `NoSource` — always says why nothing is available.
* `ChainSource` — tries sources in order; if all fail, joins their reasons.

A lookup returns a `Found` (lazy line iterator + where it came from) or a `Missing` (why).
A truncated or corrupt ``.gz`` is a `ChangelogFileError` naming the file, not a missing changelog:
the image ships a broken file, and saying "no changelog" would hide it.

tarfile and python-debian's changelog module load inside the lookups that read files, so a diff
with no changelog source (two manifest files) starts without them.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tempfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from orchestrator.errors import ChangelogFileError
from orchestrator.inputs import LIMITS, bounded_lines

__all__ = [
    "ArchiveSource",
    "ChainSource",
    "ChangelogSource",
    "DirectorySource",
    "Found",
    "Missing",
    "NoSource",
    "changelog_from_deb",
    "first_line",
    "read_lines",
    "source_for",
]

# What a truncated or corrupt gzip stream raises: EOFError (ended early), BadGzipFile (an OSError,
# bad header or CRC), zlib.error (bad deflate data).
_GZIP_ERRORS = (EOFError, OSError, zlib.error)


@dataclass(frozen=True)
class Found:
    """A changelog was found; ``open()`` yields its lines lazily and closes the file after."""

    origin: str
    open: Callable[[], Iterator[str]]


@dataclass(frozen=True)
class Missing:
    """No changelog; ``reason`` says why, for the report."""

    reason: str


Lookup = Found | Missing


class ChangelogSource(ABC):
    """Finds the changelog.Debian of a package at a version."""

    @abstractmethod
    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        """Find the changelog for any of ``names`` (binary names first, then the source name).

        ``version`` is the version whose changelog is wanted (the newer side of the change).
        """


def read_lines(path: Path) -> Generator[str, None, None]:
    """The file's lines, gunzipped when it ends in ``.gz``; damage is a `ChangelogFileError`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from bounded_lines(fh, str(path), "changelog", ChangelogFileError)
    except _GZIP_ERRORS as exc:
        raise _damaged(str(path), exc) from None


def _damaged(where: str, exc: BaseException) -> ChangelogFileError:
    what = "truncated" if isinstance(exc, EOFError) else "corrupt or unreadable"
    return ChangelogFileError(
        f"{where}: {what} changelog file ({exc})",
        hint="the image ships a damaged file; rebuild the package or point --changelog-dir "
        "at a good copy",
    )


def first_line(path: Path) -> str:
    """The file's first non-blank line (without its newline; "" for a blank file), read no
    further."""
    lines = read_lines(path)
    try:
        return next((line for line in lines if line.strip()), "").rstrip("\n")
    finally:
        lines.close()


def _is_debian_changelog(path: Path) -> bool:
    """Whether the first non-blank line is a Debian changelog header (``pkg (ver) dist; …``)."""
    from debian.changelog import topline

    return topline.match(first_line(path)) is not None


class DirectorySource(ChangelogSource):
    """Changelogs in a local directory: flat ``<name>.changelog.Debian[.gz]`` or an image tree."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def candidates(self, name: str, leaf: str = "changelog.Debian") -> list[Path]:
        """Where ``name``'s changelog may be, for ``leaf`` ``changelog.Debian`` or ``changelog``."""
        doc = self.root / "usr" / "share" / "doc" / name
        return [
            self.root / f"{name}.{leaf}.gz",
            self.root / f"{name}.{leaf}",
            doc / f"{leaf}.gz",
            doc / leaf,
        ]

    def inside(self, path: Path) -> bool:
        """Whether ``path``, its links resolved, is a file within the root (never a host file)."""
        try:
            return path.is_file() and path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # a link loop
            return False

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        unique = list(dict.fromkeys(names))
        outside = [
            str(p)
            for n in unique
            for leaf in ("changelog.Debian", "changelog")
            for p in self.candidates(n, leaf)
            if p.is_file() and not self.inside(p)
        ]
        for name in unique:
            for path in self.candidates(name):
                if self.inside(path):
                    return Found(str(path), partial(read_lines, path))
        upstream = []
        for name in unique:  # native packages: changelog.gz, if it is in Debian's format
            for path in self.candidates(name, "changelog"):
                if not self.inside(path):
                    continue
                if _is_debian_changelog(path):
                    return Found(str(path), partial(read_lines, path))
                upstream.append(str(path))
        skipped = f" ({', '.join(upstream)}: not a Debian changelog)" if upstream else ""
        if outside:
            skipped += f" ({', '.join(outside)}: a link out of {self.root}, not followed)"
        return Missing(f"no changelog for {'/'.join(unique)} under {self.root}{skipped}")


class NoSource(ChangelogSource):
    """Used when no changelog source was configured."""

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        return Missing("no changelog source configured (use --changelog-dir or --from-archive)")


class ChainSource(ChangelogSource):
    """Tries each source in order; the first `Found` wins."""

    def __init__(self, sources: Sequence[ChangelogSource]) -> None:
        self.sources = list(sources)

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        reasons = []
        for source in self.sources:
            result = source.lookup(names, version)
            if isinstance(result, Found):
                return result
            reasons.append(result.reason)
        return Missing("; ".join(reasons) or "no changelog source configured")


def changelog_from_deb(deb: Path, names: Sequence[str], dpkg_deb: str = "dpkg-deb") -> str | None:
    """The text of ``usr/share/doc/<name>/changelog.Debian[.gz]`` inside a .deb, or None.

    A native package's ``changelog[.gz]`` is taken when no ``changelog.Debian`` is there and it
    starts with a Debian changelog header. ``dpkg-deb --fsys-tarfile`` handles every data.tar
    compression dpkg supports; Python's tarfile reads the result.
    """
    import tarfile

    from debian.changelog import topline

    proc = subprocess.run(
        [dpkg_deb, "--fsys-tarfile", str(deb)], capture_output=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise OSError(proc.stderr.decode(errors="replace").strip() or "dpkg-deb failed")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for leaf, native in (("changelog.Debian", False), ("changelog", True)):
            for name in dict.fromkeys(names):
                for suffix in (".gz", ""):
                    member_name = f"usr/share/doc/{name}/{leaf}{suffix}"
                    member = members.get(member_name)
                    fh = tar.extractfile(member) if member is not None and member.isfile() else None
                    if fh is None:
                        continue
                    text = _member_text(fh.read(), f"{deb.name}:{member_name}", suffix == ".gz")
                    first = next((ln for ln in text.splitlines() if ln.strip()), "")
                    if not native or topline.match(first):
                        return text
    return None


def _member_text(data: bytes, where: str, compressed: bool) -> str:
    """A changelog member's text; a damaged gzip stream is a `ChangelogFileError`."""
    if compressed:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                data = fh.read(LIMITS["changelog"] + 1)  # a gzip bomb stops at the limit
        except _GZIP_ERRORS as exc:
            raise _damaged(where, exc) from None
    if len(data) > LIMITS["changelog"]:
        raise ChangelogFileError(
            f"{where}: larger than the {LIMITS['changelog'] >> 20} MiB limit for a changelog file"
        )
    return data.decode("utf-8", errors="replace")


class ArchiveSource(ChangelogSource):
    """Downloads the package's .deb from the configured apt archive and reads its changelog.

    Needs ``apt-get`` and ``dpkg-deb``; without them, or when the download fails (package not in the
    archive, no network), the lookup is a `Missing` with apt's own message.
    """

    def __init__(self, apt_get: str | None = None, dpkg_deb: str | None = None) -> None:
        self.apt_get = apt_get or shutil.which("apt-get")
        self.dpkg_deb = dpkg_deb or shutil.which("dpkg-deb")

    def lookup(self, names: Sequence[str], version: str) -> Lookup:
        if not self.apt_get or not Path(self.apt_get).exists():
            return Missing("apt-get is not available on this machine")
        if not self.dpkg_deb:
            return Missing("dpkg-deb is not available on this machine")
        import tarfile

        binaries = list(dict.fromkeys(names))
        reasons = []
        with tempfile.TemporaryDirectory(prefix="imagefleet-deb-") as tmp:
            for name in binaries:
                try:
                    proc = subprocess.run(
                        [self.apt_get, "download", "-q", f"{name}={version}"],
                        cwd=tmp,
                        capture_output=True,
                        check=False,
                        timeout=300,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    reasons.append(f"apt-get download {name}={version}: {exc}")
                    continue
                if proc.returncode != 0:
                    msg = proc.stderr.decode(errors="replace").strip().splitlines()
                    reasons.append(
                        f"apt-get download {name}={version} failed: {msg[-1] if msg else '?'}"
                    )
                    continue
                for deb in sorted(Path(tmp).glob("*.deb")):
                    try:
                        text = changelog_from_deb(deb, binaries, self.dpkg_deb)
                    except (OSError, tarfile.TarError, subprocess.TimeoutExpired) as exc:
                        reasons.append(f"{deb.name}: cannot read: {exc}")
                        continue
                    if text is not None:
                        lines = text.splitlines()
                        return Found(f"archive:{deb.name}", partial(iter, lines))
                    reasons.append(f"{deb.name} has no usr/share/doc/*/changelog[.Debian]")
                    deb.unlink()
        return Missing("; ".join(reasons) or "no package to download")


def source_for(
    dirs: Sequence[str | Path], *, from_archive: bool = False, package_format: str = "deb"
) -> ChangelogSource:
    """The source reading ``dirs`` in order (duplicates once), then the apt archive if asked.

    The one place that turns "where changelogs are" into a source, so a diff on the command line
    and the changelog made at bake time look in the same places. For ``rpm`` the directories hold
    ``rpm -q --changelog`` outputs (changelog/rpm_changelog.py); there is no archive to download
    from.
    """
    unique = dict.fromkeys(Path(d) for d in dirs)
    if package_format == "rpm":
        from changelog.rpm_changelog import RpmDirectorySource

        rpm_sources: list[ChangelogSource] = [RpmDirectorySource(d) for d in unique]
        if not rpm_sources:
            return NoSource()
        return rpm_sources[0] if len(rpm_sources) == 1 else ChainSource(rpm_sources)
    sources: list[ChangelogSource] = [DirectorySource(d) for d in unique]
    if from_archive:
        sources.append(ArchiveSource())
    if not sources:
        return NoSource()
    return sources[0] if len(sources) == 1 else ChainSource(sources)
