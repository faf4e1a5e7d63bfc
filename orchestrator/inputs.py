"""What users hand the CLI, checked at the boundary: strict JSON and output paths.

JSON from users (canary judge files) is read with finite floats, integers of at most 30 digits
and no Infinity literals (NaN marks a missing sample, as null does); a nesting too deep for the
parser is an input error, not a crash. Output paths (``--junit``, ``--output``, ``--plots``) are probed before any
work starts, so a long run never ends in "cannot write".
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import InputFormatError, UsageError
from orchestrator.schema import shown

MAX_INT_DIGITS = 30  # beyond any count, id or measurement a sample carries


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
        return json.loads(text, parse_float=_finite, parse_int=_bounded_int, parse_constant=_no_infinity)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
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
        raise UsageError(f"{option} {shown(str(path))}: is {'not ' if directory else ''}a directory")
    existing = path if directory and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {shown(str(path))}: {existing} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".imagefleet-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {shown(str(path))}: cannot write in {existing} ({exc.strerror})") from None
    return path
