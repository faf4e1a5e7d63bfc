"""What users hand the CLI, checked at the boundary: bounded reads, strict JSON and output paths.

Every reader of a user's file goes through ``read_bounded`` (the bytes of a small document),
``bounded_lines`` (a line-based file, streamed) or ``bounded_path`` (a file a library reads itself,
checked as a stream first): each stops at a documented size limit (``LIMITS``) and, for
line-based formats, at ``MAX_LINE`` bytes without a newline, with an input error naming the file
and the limit. So ``--canary /dev/zero`` or a 1 GiB manifest on one line ends with exit 2 after
reading at most the limit, in bounded memory.

JSON from users (canary judge files) is read with finite floats, integers of at most 30 digits
and no Infinity literals (NaN marks a missing sample, as null does); a nesting too deep for the
parser is an input error, not a crash. Output paths (``--junit``, ``--output``, ``--plots``) are
probed before any
work starts, so a long run never ends in "cannot write".
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import ImagefleetError, InputFormatError, UsageError
from orchestrator.schema import shown

MAX_INT_DIGITS = 30  # beyond any count, id or measurement a sample carries
MiB = 1 << 20
MAX_LINE = MiB  # a manifest, samples or changelog line; real ones are under 10 KiB
# The most imagefleet reads of each kind of user file (bytes; a changelog counts uncompressed).
LIMITS: dict[str, int] = {
    "config": MiB,  # imagefleet.toml: a large fleet's is under 50 KiB
    "template": 4 * MiB,  # a Packer template file (JSON or one .pkr.hcl); real ones are a few KiB
    "judge": 8 * MiB,  # a canary judge file: about a million samples
    "manifest": 32 * MiB,  # dpkg -W of 3,000 packages is 100 KiB, a status file a few MiB
    "changelog": 64 * MiB,  # the longest changelog.Debian in Ubuntu 24.04 is under 2 MiB
    "samples": 4 << 30,  # perf samples: 10 million rows are about 1.3 GiB
}
_CHUNK = MiB


def _human(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def _too_big(where: str, kind: str, error: type[ImagefleetError]) -> ImagefleetError:
    return error(
        f"{where}: larger than the {_human(LIMITS[kind])} limit for a {kind} file",
        hint="imagefleet reads at most that much of it (docs/bad-input.md#size-limits)",
    )


def _too_long(where: str, line: int, error: type[ImagefleetError]) -> ImagefleetError:
    return error(
        f"{where}:{line}: a line longer than the {_human(MAX_LINE)} limit",
        hint="a manifest, samples or changelog line is short text; is this the right file?",
    )


def _open(path: Path, error: type[ImagefleetError], noun: str = "file") -> IO[bytes]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise error(f"{path}: no such {noun}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {noun}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise error(f"{path}: is a directory, not a {noun}")
    return fh


def _chunks(
    fh: IO[bytes], where: str, kind: str, error: type[ImagefleetError], lines: bool
) -> Iterator[bytes]:
    """The file's bytes in chunks of at most 1 MiB, checked against the size and line limits."""
    size = os.fstat(fh.fileno())
    if stat.S_ISREG(size.st_mode) and size.st_size > LIMITS[kind]:
        raise _too_big(where, kind, error)  # refused before reading a byte
    total, since_newline, line = 0, 0, 1
    while True:
        try:
            chunk = fh.read(_CHUNK)
        except OSError as exc:
            raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
        if not chunk:
            return
        total += len(chunk)
        if total > LIMITS[kind]:
            raise _too_big(where, kind, error)
        if lines:
            first = chunk.find(b"\n")
            if first < 0:
                since_newline += len(chunk)
            else:  # lines inside a chunk are shorter than the chunk, itself MAX_LINE at most
                if since_newline + first > MAX_LINE:
                    raise _too_long(where, line, error)
                since_newline = len(chunk) - chunk.rfind(b"\n") - 1
                line += chunk.count(b"\n")
            if since_newline > MAX_LINE:
                raise _too_long(where, line, error)
        yield chunk


def read_bounded(
    path: str | Path,
    kind: str,
    *,
    lines: bool = True,
    error: type[ImagefleetError] = InputFormatError,
    noun: str = "file",
) -> bytes:
    """A user's file of ``kind`` as bytes, read as a stream that stops at the kind's limit.

    ``lines``: the format is line-based, so a line past ``MAX_LINE`` is refused as it streams
    (a JSON document may legitimately be one line; its bound is the size limit).
    """
    p = Path(path)
    with _open(p, error, noun) as fh:
        return b"".join(_chunks(fh, str(p), kind, error, lines))


def bounded_lines(
    stream: IO[str], where: str, kind: str, error: type[ImagefleetError] = InputFormatError
) -> Iterator[str]:
    """The lines of an open text stream (a gunzipped changelog), within the kind's limits."""
    total, n = 0, 0
    while True:
        text = stream.readline(MAX_LINE + 1)
        if not text:
            return
        n += 1
        if len(text) > MAX_LINE:
            raise _too_long(where, n, error)
        total += len(text)
        if total > LIMITS[kind]:
            raise _too_big(where, kind, error)
        yield text


@contextmanager
def bounded_path(
    path: str | Path,
    kind: str,
    *,
    error: type[ImagefleetError] = InputFormatError,
    noun: str = "file",
) -> Iterator[Path]:
    """A path a library may read whole (pandas), once the file has streamed within the limits.

    A regular file is checked in place; anything else (a pipe, a device such as ``/dev/zero``) is
    copied, within the limits, to a private temporary file that is removed afterwards.
    """
    p = Path(path)
    with _open(p, error, noun) as fh:
        if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            for _ in _chunks(fh, str(p), kind, error, True):
                pass
            yield p
            return
        with tempfile.TemporaryDirectory(prefix="imagefleet-input-") as tmp:
            copy = Path(tmp) / p.name
            with copy.open("wb") as out:
                for chunk in _chunks(fh, str(p), kind, error, True):
                    out.write(chunk)
            yield copy


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {shown(text)} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits is out of range")
    return int(text)


def _no_infinity(name: str) -> float:
    """``NaN`` stays (a missing sample, as ``null`` is); ``Infinity`` is no measurement."""
    if name == "NaN":
        return math.nan
    raise ValueError(f"{name} is not a finite number")


def loads_json(text: str | bytes, where: str) -> Any:
    """Parse JSON strictly; any problem is an InputFormatError naming ``where`` (and line:col)."""
    try:
        return json.loads(
            text, parse_float=_finite, parse_int=_bounded_int, parse_constant=_no_infinity
        )
    except json.JSONDecodeError as exc:
        raise InputFormatError(
            f"{where}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise InputFormatError(f"{where}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"{where}: not valid JSON ({exc})") from None


def check_writable(path: Path, option: str, *, directory: bool = False) -> Path:
    """Raise a UsageError unless ``path`` can be written (its directories created as needed).

    Probes by creating and removing a temporary file in the nearest existing directory, which
    answers correctly for read-only mounts and for root alike, where ``os.access`` does not.
    """
    if path.exists() and path.is_dir() != directory:
        raise UsageError(
            f"{option} {shown(str(path))}: is {'not ' if directory else ''}a directory"
        )
    if path.exists() and not directory and not path.is_file() and str(path) != os.devnull:
        # a device or pipe (/dev/full) takes the probe but not the file: refused before the work
        raise UsageError(
            f"{option} {shown(str(path))}: not a regular file",
            hint="write to a file (or /dev/null); the output is replaced when the command ends",
        )
    if path.is_file() and not directory:
        try:
            with path.open(
                "ab"
            ):  # an existing file must be writable itself, not only its directory
                pass
        except OSError as exc:
            raise UsageError(
                f"{option} {shown(str(path))}: cannot write ({exc.strerror})"
            ) from None
    existing = path if directory and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {shown(str(path))}: {existing} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".imagefleet-probe-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option} {shown(str(path))}: cannot write in {existing} ({exc.strerror})"
        ) from None
    return path
