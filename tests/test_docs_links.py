"""Every relative link in README.md and docs/*.md reaches a file that exists and, when it names
one, a heading (or an explicit anchor) that file has, slugged the way GitHub slugs headings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower-cased, with every character but
    letters, digits, ``_``, ``-`` and spaces removed, and spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML shows nothing of its tags
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text)  # emphasis markers are not text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _prose(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


@cache
def anchors(page: Path) -> set[str]:
    """Every ``#anchor`` GitHub gives ``page``: heading slugs, repeats numbered ``-1``, ``-2``…,
    and explicit ``<a name>``/``<a id>`` anchors."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in _prose(page.read_text(encoding="utf-8")):
        out.update(_HTML_ANCHOR.findall(line))
        m = _HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every relative link on ``page``, code left out."""
    for n, line in _prose(page.read_text(encoding="utf-8")):
        bare = _CODE_SPAN.sub("", line)
        targets = _INLINE_LINK.findall(bare)
        ref = _REF_LINK.match(bare)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:
                yield n, target


def broken(page: Path, root: Path = ROOT) -> list[str]:
    """One line per link that leads nowhere: file:line, the target, and what is missing."""
    out = []
    for n, target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        where = f"{page.relative_to(root)}:{n}: {target}"
        if not dest.exists():
            out.append(f"{where} (no such file)")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            out.append(f"{where} (no heading #{fragment} in {dest.relative_to(root)})")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_a_file_and_a_heading(page: Path) -> None:
    assert broken(page) == []


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Garbage collection: `imagefleet gc`", "garbage-collection-imagefleet-gc"),
        (
            "Stage tags: every stage a base is current in",
            "stage-tags-every-stage-a-base-is-current-in",
        ),
        ("A team's template, as it is", "a-teams-template-as-it-is"),
        ("Progress, timeout, errors", "progress-timeout-errors"),
        ("`perf.vcpu_limit` and **quotas**", "perfvcpu_limit-and-quotas"),
        ("Links: [the guide](guide.md) — why", "links-the-guide--why"),
        ("Émigré names", "émigré-names"),
    ],
)
def test_headings_slug_as_github_slugs_them(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_broken_file_or_anchor_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n## Twice\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#title) [second](other.md#twice-1) [self](#top)\n"
        "# Top\n"
        "[gone](missing.md) [bad](other.md#nope) [third](other.md#twice-2)\n"
        "`[in code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
        "[web](https://example.com/x.md#y)\n"
        "[ref]: other.md#gone\n"
    )
    assert broken(page, tmp_path) == [
        "page.md:3: missing.md (no such file)",
        "page.md:3: other.md#nope (no heading #nope in other.md)",
        "page.md:3: other.md#twice-2 (no heading #twice-2 in other.md)",
        "page.md:9: other.md#gone (no heading #gone in other.md)",
    ]
