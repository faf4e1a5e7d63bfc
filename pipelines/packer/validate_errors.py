"""What ``packer validate`` refuses, said in one line; keys an older Packer does not know are named
with the Packer release that introduced them.

Packer prints its errors over many lines: HCL2 diagnostics (``Error: Unsupported argument``, the
file and line, the source, a sentence) and, for JSON templates, a list of ``* ...`` items under
``Error: Failed to prepare build: "amazon-ebs"``. imagefleet's errors are one line, so each problem
becomes ``FILE line N: summary: sentence`` (or ``BUILD: item``) and they are joined with ``; ``.

A key Packer does not know is either a typo or a key of a newer Packer. The keys below are those
whose first release is known (Packer's CHANGELOG.md, "1.7.0 (February 17, 2021)"): for them the
message is "needs Packer ≥ X"; for any other the installed version is shown and both readings are
named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# key or block name → the first Packer release that reads it (Packer's CHANGELOG.md)
INTRODUCED: dict[str, str] = {
    "required_plugins": "1.7.0",  # packer init and the required_plugins block (GH-10304)
    "data": "1.7.0",  # data sources (GH-10440), e.g. data "amazon-ami"
    "error-cleanup-provisioner": "1.7.0",  # HCL2 (GH-10604)
    "skip_create_ami": "1.7.0",  # builder/amazon (GH-10531)
    "metadata_options": "1.7.0",  # builder/amazon IMDSv2 support (GH-10546)
}

_UNKNOWN_KEY = (
    re.compile(r'An argument named "([^"]+)" is not expected here'),
    re.compile(r'Blocks of type "([^"]+)" are not expected here'),
    re.compile(r"""unknown configuration key: '"?([^'"]+?)"?'"""),
)
_WHERE = re.compile(r"^\s*on (\S+) line (\d+)")
_BUILD = re.compile(r'^Failed to prepare build: "([^"]+)"')
_ITEM = re.compile(r"^\s*\* (.+)$")
_SOURCE_LINE = re.compile(r"^\s*\d+:")
SHOWN = 3  # problems shown in the message; the rest are counted


@dataclass(frozen=True)
class Problem:
    text: str  # one line
    unknown_key: str | None = None  # a key or block Packer does not know


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unknown(text: str) -> str | None:
    for pattern in _UNKNOWN_KEY:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def _chunk(header: str, body: list[str]) -> list[Problem]:
    where = next((f"{m.group(1)} line {m.group(2)}" for ln in body if (m := _WHERE.match(ln))), "")
    items = [m.group(1) for ln in body if (m := _ITEM.match(ln))]
    build = _BUILD.match(header)
    if items:
        prefix = build.group(1) if build else where
        return [Problem(_one_line(f"{prefix}: {i}" if prefix else i), _unknown(i)) for i in items]
    sentences = [
        ln
        for ln in body
        if ln.strip()
        and not _WHERE.match(ln)
        and not _SOURCE_LINE.match(ln)
        and ln.strip() != "(source code not available)"
    ]
    detail = _one_line(" ".join(sentences))
    text = ": ".join(p for p in (where, header.strip(), detail) if p)
    return [Problem(_one_line(text), _unknown(detail) or _unknown(header))]


def problems(output: str) -> list[Problem]:
    """Each problem ``packer validate`` printed, once, as one line (in the order printed)."""
    found: list[Problem] = []
    header: str | None = None
    body: list[str] = []
    for line in [*output.splitlines(), "Error: "]:
        if line.startswith("Error: "):
            if header is not None and (header.strip() or body):
                found += _chunk(header, body)
            header, body = line[len("Error: ") :], []
        elif header is None:
            if line.strip():
                header, body = "", [line]
        else:
            body.append(line)
    unique = list(dict.fromkeys(found))
    return unique or ([Problem(_one_line(output))] if output.strip() else [])


def _newer(a: str, b: str) -> bool:
    return tuple(int(p) for p in a.split(".")) > tuple(int(p) for p in b.split("."))


def message(template: str, output: str, installed: str | None) -> tuple[str, str | None]:
    """(one-line message, hint) for a template ``packer validate`` refused."""
    found = problems(output)
    unknown = list(dict.fromkeys(p.unknown_key for p in found if p.unknown_key))
    known = {k: INTRODUCED[k] for k in unknown if k in INTRODUCED}
    shown = "; ".join(p.text for p in found[:SHOWN])
    if len(found) > SHOWN:
        shown += f" (and {len(found) - SHOWN} more)"
    packer = f"Packer {installed}" if installed else "the installed Packer"
    if known:
        needed = max(known.values(), key=lambda v: tuple(int(p) for p in v.split(".")))
        if installed is None or _newer(needed, installed):
            keys = ", ".join(f"{k} (Packer {v})" for k, v in known.items())
            found_text = f"the installed Packer is {installed}" if installed else "it is older"
            return (
                f"{template} needs Packer ≥ {needed} but {found_text}: it uses {keys}",
                f"install Packer {needed} or later (packer validate said: {shown})",
            )
    if unknown:
        return (
            f"packer validate refused {template}: {packer} does not know "
            f"{', '.join(unknown)} — a key of a newer Packer"
            + (f" than {installed}" if installed else "")
            + ", or a typo",
            f"packer validate said: {shown}",
        )
    return f"packer validate refused {template}: {shown}", None
