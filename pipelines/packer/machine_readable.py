"""Parse `packer build -machine-readable` output (pure).

Each line is ``timestamp,target,type,data...``; commas inside data are escaped as
``%!(PACKER_COMMA)`` and newlines as ``\\n``. An amazon-ebs artifact id is
``us-east-1:ami-1,us-west-2:ami-2`` (escaped commas).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

COMMA = "%!(PACKER_COMMA)"


@dataclass(frozen=True)
class Line:
    timestamp: int
    target: str
    type: str
    data: tuple[str, ...]


def unescape(text: str) -> str:
    return text.replace(COMMA, ",").replace("\\n", "\n").replace("\\r", "\r")


def parse_line(raw: str) -> Line | None:
    """One machine-readable line, or None for anything else (Packer prints a few plain lines)."""
    parts = raw.rstrip("\r\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    return Line(int(parts[0]), parts[1], parts[2], tuple(unescape(p) for p in parts[3:]))


def parse(lines: Iterable[str]) -> list[Line]:
    return [ln for ln in (parse_line(r) for r in lines) if ln is not None]


def amis_by_region(lines: Iterable[Line]) -> dict[str, str]:
    """AMI id per region from the ``artifact,N,id,REGION:AMI,...`` lines."""
    amis: dict[str, str] = {}
    for ln in lines:
        if ln.type == "artifact" and len(ln.data) >= 3 and ln.data[1] == "id":
            for pair in ln.data[2].split(","):
                region, sep, ami = pair.strip().partition(":")
                if sep and ami.startswith("ami-"):
                    amis[region] = ami
    return amis


def amis_by_build(lines: Iterable[Line]) -> dict[str, dict[str, str]]:
    """AMI id per region of each build (the line's target: ``amazon-ebs.arm64``, ``amazon-ebs``).

    A template with several sources makes one artifact per build; ``amis_by_region`` folds them
    into one map, where the last build would hide the others.
    """
    out: dict[str, dict[str, str]] = {}
    for ln in lines:
        found = amis_by_region([ln])
        if found:
            out.setdefault(ln.target, {}).update(found)
    return out


def errors(lines: Iterable[Line]) -> list[str]:
    """Packer's own error text: ``error`` lines and error-level UI messages."""
    out = []
    for ln in lines:
        if ln.type == "error" and ln.data:
            out.append(ln.data[0].strip())
        elif ln.type == "ui" and len(ln.data) >= 2 and ln.data[0] == "error":
            out.append(ln.data[1].strip())
    return [e for e in out if e]


_ARROW = re.compile(r"^(==>|-->)\s*")


def progress(line: Line) -> str | None:
    """A human message for a line worth showing while Packer runs, every line of it.

    Packer's summary ("--> amazon-ebs: AMIs were created:" and one line per region) is one
    ``ui,say`` line with escaped newlines; its continuation lines come back indented by two.
    """
    if line.type == "ui" and len(line.data) >= 2 and line.data[0] in ("say", "message"):
        text = [t.strip() for t in line.data[1].splitlines() if t.strip()]
        if not text:
            return None
        return "\n".join([_ARROW.sub("", text[0]), *(f"  {t}" for t in text[1:])])
    return None


_CREATED = re.compile(r"\bAMI: (ami-[0-9a-f]+)\b")


def created_ami(line: Line) -> str | None:
    """The AMI an amazon-ebs build just registered (``ui,message,... AMI: ami-…``), before any copy.

    Packer prints it the moment CreateImage returns, long before the artifact line, so a bake
    records it at once: if the bake dies afterwards, the AMI is still known.
    """
    if line.type == "ui" and len(line.data) >= 2 and line.data[0] in ("say", "message"):
        m = _CREATED.search(line.data[1])
        return m.group(1) if m else None
    return None


def amis_from_manifest(manifest: dict[str, Any]) -> dict[str, str]:
    """AMI id per region from Packer's ``manifest`` post-processor output (its last run's
    builds)."""
    amis: dict[str, str] = {}
    for found in builds_from_manifest(manifest).values():
        amis.update(found)
    return amis


def builds_from_manifest(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """AMI id per region of each build of the last run, by the build's ``name`` (the source's)."""
    builds = manifest.get("builds") if isinstance(manifest, dict) else None
    if not isinstance(builds, list):
        return {}
    last = manifest.get("last_run_uuid")
    out: dict[str, dict[str, str]] = {}
    for i, build in enumerate(builds):
        if not isinstance(build, dict) or (last and build.get("packer_run_uuid") != last):
            continue
        name = str(build.get("name") or build.get("builder_type") or i)
        for pair in str(build.get("artifact_id", "")).split(","):
            region, sep, ami = pair.strip().partition(":")
            if sep and ami.startswith("ami-"):
                out.setdefault(name, {})[region] = ami
    return out
