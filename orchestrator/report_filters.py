"""The report site's template environment: jinja2 over ``templates/report`` (autoescaped, strict)
and the filters its pages use: times that say which clock they are on (``stamp``), numbers and
canary/baseline ratios as the matrix shows them, and Markdown drawn as HTML with raw HTML and
unsafe links left out.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup


def environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (resources.files("orchestrator") / "templates" / "report" / name).read_text()
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = _num
    env.filters["ratio"] = _ratio
    env.filters["stamp"] = _stamp
    env.filters["markdown"] = _markdown
    return env


def _safe_link(url: str) -> bool:
    """Links a page of the site may carry: within the site, or to the web (no ``s3:``,
    ``javascript:`` or ``file:`` scheme a browser cannot or should not follow)."""
    scheme, colon, _ = url.partition(":")
    return not colon or "/" in scheme or "#" in scheme or scheme.lower() in ("http", "https")


def _markdown(text: str) -> Markup:
    """Markdown as HTML, CommonMark with tables (a retrospective's follow-ups and metrics). Raw
    HTML in the text is shown as text, never passed through: the draft quotes package names and
    reasons that came from outside."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    return Markup(md.render(text))  # html is off: markdown-it escaped every text


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _num(x: object, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _ratio(x: float | None) -> str:
    """A canary/baseline ratio as the matrix shows it: ``×1.42`` (``×–`` without one)."""
    return "×–" if x is None else f"×{x:.2f}" if abs(x) < 100 else f"×{x:.0f}"


WALL = "UTC"  # the wall clock's label; any other ``clock_label`` names the clock the run used


@jinja2.pass_context
def _stamp(ctx: Any, iso: str | None, short: bool = False, recorded: bool = False) -> Markup:
    """A timestamp that says which clock it is on: a ``<time>`` whose title names it.

    Times taken from the command's clock (analysis windows, generated at) are on ``clock_label``
    ("UTC", or "virtual clock" when the commands ran on one); ``recorded`` ones are the store's
    own stamps (audit entries, a rollout's start), always on the wall clock. ``short``: the time
    of day only (a window's end on the day it started)."""
    text = _when(iso)
    label = ctx.get("clock_label") or WALL
    if recorded and label != WALL:
        label, cls = f"{WALL}, wall clock (the store's own stamp)", "wall"
    else:
        cls = "wall" if label == WALL else "virtual"
    return Markup('<time class="{}" datetime="{}" title="{}">{}</time>').format(
        cls, iso or "", f"{text} {label}", text[11:] if short else text
    )
