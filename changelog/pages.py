"""Each base's published changelogs, read back and drawn for the report site's changelog pages.

A bake publishes every changelog as Markdown, HTML and JSON in the artifact bucket
(``pipelines.registry.publish_changelog``); the base keeps the summary and the ``s3://`` URIs
(`records.ChangelogSummary`). A browser opens no ``s3://`` link, so the report reads the JSON back,
parses it (`Changelog.from_dict`) and draws it with the standalone page's own template
(`render_html_body`), as a page of the site. What cannot be read is said on the page, not fatal:
the summary still shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from changelog.records import ChangelogSummary, summaries
from changelog.render import render_html_body
from changelog.report import Changelog
from orchestrator.artifacts import read_artifact
from orchestrator.errors import AwsError, NotFoundError, StateError

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.store import BaseVersion

__all__ = ["ChangelogBody", "bodies", "draw", "read_body"]


@dataclass(frozen=True)
class ChangelogBody:
    """One stored changelog as its page draws it (``orchestrator.report_inputs.ChangelogBody``): the
    HTML of its body, every value escaped by the changelog's template, or why there is none."""

    html: str | None = None
    problem: str | None = None


def read_body(aws: AwsFactory, summary: ChangelogSummary, name: str) -> ChangelogBody:
    """The body of the changelog ``summary`` names, read from its published JSON; ids start with
    ``name`` (see `draw`), so a base's two changelogs share a page. Raises
    `AwsError` when S3 cannot be read at all (the caller stops asking)."""
    uri = summary.uris.get("json")
    if not uri:
        return ChangelogBody(problem="no JSON rendering was published with it")
    try:
        text = read_artifact(aws, uri)
    except NotFoundError:
        return ChangelogBody(problem=f"{uri} is missing from the artifact bucket")
    try:
        log = Changelog.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return ChangelogBody(problem=f"{uri} is not a changelog's JSON ({type(exc).__name__})")
    return draw(log, name)


def draw(log: Changelog, name: str) -> ChangelogBody:
    """``log`` as the body of comparison ``name`` on its base's page: ids start with ``name``
    (``vs_parent-security``, ``vs_parent-CVE-2024-0727``), sections are ``h3`` below the page's
    ``h2`` per comparison."""
    return ChangelogBody(render_html_body(log, id_prefix=f"{name}-", heading=3))


def bodies(
    aws: Callable[[], AwsFactory], bases: Iterable[BaseVersion]
) -> dict[str, dict[str, ChangelogBody]]:
    """Every stored changelog's body, by base ref then comparison (``vs_parent``, ``vs_release``).

    ``aws`` makes the client factory when the first changelog is read: a store with no changelog
    (or a local endpoint that is not running) needs no AWS. After the first failure to reach S3
    (no endpoint, missing or denied credentials) the rest are not asked for, each saying why: the
    retry budget is paid once, not once a base."""
    out: dict[str, dict[str, ChangelogBody]] = {}
    failed: str | None = None
    for base in bases:
        for name, summary in summaries(base.changelog).items():
            made = out.setdefault(base.ref, {})
            if failed is None:
                try:
                    made[name] = read_body(aws(), summary, name)
                    continue
                except (AwsError, StateError) as exc:  # StateError: no local endpoint running
                    failed = f"the artifact bucket could not be read: {exc.message}"
            made[name] = ChangelogBody(problem=failed)
    return out
