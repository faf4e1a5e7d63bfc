"""The report's own pages for what used to be links out of it: each base's changelog (read back
from the JSON a bake published) and each retrospective (its Markdown drawn as HTML). A crawl in
Debian's Chromium from index.html follows every link and loads every image of the site."""

from __future__ import annotations

import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from test_report import add_fleet_snapshots, populate

from canary.report_rows import matrices
from changelog.pages import ChangelogBody, bodies, draw
from changelog.records import summaries
from changelog.report import Changelog
from imagefleet.cli import raw_main
from orchestrator import report
from orchestrator.aws import AwsFactory
from orchestrator.context import Context
from orchestrator.errors import StateError
from orchestrator.local.endpoint import free_port
from orchestrator.output import Output
from orchestrator.store import BaseVersion, SqliteStore, StateStore, utcnow
from perf.records import runs
from pipelines import retro
from pipelines.fleet import snapshot
from pipelines.records import RETRO_KIND, RetroRecord
from pipelines.registry import artifact_prefix, publish_changelog

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# web:2 → web:3 as a bake publishes it (changelog.render's json): openssl fixes two CVEs, one entry
# quotes markup, bar moves back a version and loses a fix.
PUBLISHED: dict[str, Any] = {
    "old": "web:2",
    "new": "web:3",
    "summary": {"added": 1, "removed": 0, "upgraded": 2, "downgraded": 1, "unchanged": 40},
    "added": [{"package": "jq", "version": "1.7.1-3build1"}],
    "removed": [],
    "upgraded": [
        {
            "package": "libssl3",
            "old": "3.0.13-0ubuntu3.1",
            "new": "3.0.13-0ubuntu3.4",
            "source": "openssl",
            "binaries": [
                {"package": "libssl3", "old": "3.0.13-0ubuntu3.1", "new": "3.0.13-0ubuntu3.4"},
                {"package": "openssl", "old": "3.0.13-0ubuntu3.1", "new": "3.0.13-0ubuntu3.4"},
            ],
            "entries": [
                {
                    "version": "3.0.13-0ubuntu3.4",
                    "urgency": "medium",
                    "date": "Mon, 09 Sep 2024 10:00:00 +0000",
                    "author": "Jane Doe <jane@example.org>",
                    "changes": [
                        "  * SECURITY UPDATE: CVE-2024-5535 and CVE-2024-6119.",
                        "  * Quote <script>alert('x')</script> & more.",
                    ],
                }
            ],
            "cves": ["CVE-2024-5535", "CVE-2024-6119"],
            "note": None,
        },
        {
            "package": "curl",
            "old": "8.5.0-2ubuntu10.1",
            "new": "8.5.0-2ubuntu10.4",
            "source": "curl",
            "binaries": [
                {"package": "curl", "old": "8.5.0-2ubuntu10.1", "new": "8.5.0-2ubuntu10.4"}
            ],
            "entries": [],
            "cves": [],
            "note": "no changelog available: not in the changelog directories",
        },
    ],
    "downgraded": [
        {
            "package": "bar",
            "old": "2.0-3",
            "new": "2.0-1",
            "source": "bar",
            "binaries": [{"package": "bar", "old": "2.0-3", "new": "2.0-1"}],
            "entries": [
                {
                    "version": "2.0-2",
                    "urgency": "high",
                    "date": "Tue, 01 Feb 2022 00:00:00 +0000",
                    "author": "A <a@example.org>",
                    "changes": ["  * Security: CVE-2022-1111."],
                }
            ],
            "cves": ["CVE-2022-1111"],
            "note": None,
        }
    ],
    "cves": {"CVE-2024-5535": ["libssl3"], "CVE-2024-6119": ["libssl3"]},
    "snaps": {"added": [], "removed": [], "changed": [], "unchanged": 0},
}

RETRO_MARKDOWN = """\
# Retrospective (draft): web:3: canary rolled back cohort r5.large

## Impact

| metric | class | canary mean | baseline mean |
|---|---|---:|---:|
| latency_ms | High | 160 | 100 |

- wave 1 of r5.large judged **fail**
- a package note that quotes <img src=x onerror=alert(1)> markup
- [the stored changelog](s3://imagefleet-artifacts/web/3/vs-2.md), [the family](../family-web.html)

## Follow-ups

_…_
"""


def add_retro(store: StateStore) -> None:
    """A retrospective draft recorded as `pipelines.retro` records one, for web:3's rollout."""
    record = RetroRecord(
        "retro-web-3",
        "web:3: canary rolled back cohort r5.large",
        "/state/retrospectives/retro-web-3.md",
        utcnow(),
        RETRO_MARKDOWN,
        "web",
        {"rollout": "web-3-abc123", "cohort": "r5.large"},
    )
    store.put_doc(RETRO_KIND, record.id, record.to_json(), expected_revision=None)


def build_site(tmp_path: Path) -> report.Site:
    """test_report's store (three bases, a rollout, a perf run, fleet snapshots with a plot), with
    web:1 retired, web:3 also compared against the release, a retrospective, and the changelogs
    read back: web:3's both, web:2's missing from the bucket."""
    store = SqliteStore(tmp_path / "state.db")
    populate(store)
    add_fleet_snapshots(store, tmp_path)
    add_retro(store)
    store.update_base("web", 1, retired_at=utcnow())
    web3 = store.get_base("web", 3)
    stored = {**web3.changelog, "vs_release": {**web3.changelog["vs_parent"], "against": 1}}
    store.update_base("web", 3, changelog=stored)
    log = Changelog.from_dict(PUBLISHED)
    return report.build(
        store,
        tmp_path / "site",
        rollouts=matrices(store),
        runs=runs(store),
        retros=retro.drafts(store),
        fleet=snapshot.latest(store),
        changelogs={b.ref: summaries(b.changelog) for b in store.bases()},
        changelog_bodies={
            "web:3": {"vs_parent": draw(log, "vs_parent"), "vs_release": draw(log, "vs_release")},
            "web:2": {"vs_parent": ChangelogBody(problem="s3://bucket/web/2/x.json is missing")},
        },
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> report.Site:
    """One site for the module's tests, which only read it."""
    return build_site(tmp_path_factory.mktemp("report"))


class Links(HTMLParser):
    """Every href and src of a page, and its ids."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.refs.append(value)
            if name == "id" and value is not None:
                self.ids.add(value)


def links(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text())
    return parser


def test_each_base_has_a_changelog_page_linked_from_its_family_and_rollout(
    site: report.Site,
) -> None:
    names = {p.relative_to(site.out).as_posix() for p in site.pages}
    assert {"changelogs/web-2.html", "changelogs/web-3.html", "retros/retro-web-3.html"} <= names
    assert "changelogs/web-1.html" not in names  # the first base has nothing to compare with
    page = (site.out / "changelogs" / "web-3.html").read_text()
    text = " ".join(page.split())
    # both comparisons, each its own section with its own ids
    assert 'id="vs_parent"' in page and 'id="vs_release"' in page
    assert 'id="vs_parent-CVE-2024-5535"' in page and 'id="vs_release-up-libssl3"' in page
    assert '<a href="#vs_parent-up-libssl3">libssl3</a>' in page  # a CVE names what fixed it
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more." in page
    assert "<script" not in page and "Loses fixes for" in page and "⚠ DOWNGRADE" in page
    assert "no changelog available: not in the changelog directories" in page
    # the stored copies are named as text; the previous base's changelog is a page of the site
    assert "Stored with the base at <code>s3://bucket/web/3/changelog.html</code>" in text
    assert '<a href="../changelogs/web-2.html">the changelog of web:2</a>' in page
    web2 = " ".join((site.out / "changelogs" / "web-2.html").read_text().split())
    assert "not shown here: s3://bucket/web/2/x.json is missing" in web2
    assert "imagefleet changelog show web:2 --against parent" in web2
    family = (site.out / "family-web.html").read_text()
    assert '<a href="changelogs/web-3.html#vs_parent">vs web:2</a>' in family
    assert '<a href="changelogs/web-3.html#vs_release">vs web:1</a>' in family
    rollout = (site.out / "rollouts" / "web-3-abc123.html").read_text()
    assert '<a href="../changelogs/web-3.html">its changelog</a>' in rollout
    # web:1 is retired: marked so in the family's bases
    assert re.search(r'<tr class="retired"><td>web:1 <span class="badge retired"', family)


def test_no_page_links_out_of_the_site_or_to_s3(site: report.Site) -> None:
    for page in site.out.rglob("*.html"):
        found = links(page)
        assert not [r for r in found.refs if re.match(r"^[a-z][a-z0-9+.-]*:", r, re.I)], page


def test_a_retrospective_is_drawn_as_html_and_its_markup_stays_text(site: report.Site) -> None:
    page = (site.out / "retros" / "retro-web-3.html").read_text()
    assert "<h1>Retrospective (draft): web:3: canary rolled back cohort r5.large</h1>" in page
    assert page.count("<h1>") == 1
    assert "<th>metric</th>" in page and "<td>latency_ms</td>" in page
    assert "<strong>fail</strong>" in page and "<em>…</em>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    assert '<a href="../family-web.html">the family</a>' in page
    assert "s3://" not in "".join(links(site.out / "retros" / "retro-web-3.html").refs)
    assert (site.out / "retros" / "retro-web-3.md").read_text() == RETRO_MARKDOWN


def test_a_published_changelog_reads_back_the_same() -> None:
    log = Changelog.from_dict(PUBLISHED)
    assert log.to_dict() == PUBLISHED
    assert [i.package for i in log.security] == ["libssl3"]


@pytest.mark.integration
def test_the_report_command_reads_each_changelog_from_the_bucket(
    tmp_path: Path, aws_endpoint: str, aws: AwsFactory
) -> None:
    """`imagefleet report` reads the JSON a bake published (as the bake publishes it); a missing
    object is said on the page."""
    ws = tmp_path / "ws"
    quiet = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert raw_main(["init", str(ws)], obj=Context(output=quiet)) == 0
    config = ws / "imagefleet.toml"
    text = config.read_text()
    config.write_text(
        re.sub(r'(?m)^endpoint_url = "local".*$', f'endpoint_url = "{aws_endpoint}"', text)
    )
    ctx = Context(config_path=config)
    web = [BaseVersion("demo", v, {}, "ami-1", v - 1 or None, "b", utcnow()) for v in (1, 2, 3)]
    published = publish_changelog(
        aws, ctx.settings, artifact_prefix("demo", 3, "b"), web[1], Changelog.from_dict(PUBLISHED)
    )
    missing = {
        "against": 1,
        "summary": {},
        "cves": 0,
        "uris": {"json": "s3://imagefleet-artifacts/demo/2/b/gone.json"},
    }
    web[1].changelog = {"vs_parent": missing}
    web[2].changelog = {"vs_parent": published.to_json()}
    for base in web:
        ctx.store.put_base(base)
    out = io.StringIO()
    code = raw_main(
        ["--config", str(config), "report", "--out", str(tmp_path / "site")],
        obj=Context(output=Output(stdout=out, stderr=io.StringIO())),
    )
    assert code == 0, out.getvalue()
    page = (tmp_path / "site" / "changelogs" / "demo-3.html").read_text()
    assert 'id="vs_parent-CVE-2024-6119"' in page and "Jane Doe" in page
    web2 = " ".join((tmp_path / "site" / "changelogs" / "demo-2.html").read_text().split())
    gone = "s3://imagefleet-artifacts/demo/2/b/gone.json"
    assert f"{gone} is missing from the artifact bucket" in web2


def test_a_bucket_that_cannot_be_reached_is_asked_once() -> None:
    down = AwsFactory(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        credentials={"aws_access_key_id": "x", "aws_secret_access_key": "y"},
        max_attempts=1,
    )
    summary = {"against": 1, "summary": {}, "cves": 0, "uris": {"json": "s3://b/k.json"}}
    bases = [
        BaseVersion("web", v, {}, "ami-1", None, "b", utcnow(), changelog={"vs_parent": summary})
        for v in (2, 3, 4)
    ]
    read = bodies(lambda: down, bases)
    problems = {body.problem for by_name in read.values() for body in by_name.values()}
    assert len(problems) == 1 and "could not be read: cannot reach AWS" in str(problems.pop())
    assert down.counter.total == 1  # one GetObject, not one a base

    def no_endpoint() -> AwsFactory:
        raise StateError("the local endpoint is not running")

    read = bodies(no_endpoint, bases)
    assert read["web:4"]["vs_parent"].problem == (
        "the artifact bucket could not be read: the local endpoint is not running"
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"
)
def test_every_link_and_image_resolves_in_chromium(site: report.Site) -> None:
    """From index.html, every page reached by a link is opened: each link's file exists, each
    fragment names an element of its page, each image loads, and no page logs an error."""
    playwright = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    seen: set[Path] = set()
    todo = [site.out / "index.html"]
    anchors: list[tuple[Path, str, str]] = []  # (the page linked, its fragment, the linking page)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}")
        )  # a missing stylesheet or image
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            page.goto(current.as_uri())
            refs = page.evaluate(
                "[...document.querySelectorAll('a[href]')].map(a => a.href)"
                ".concat([...document.querySelectorAll('link[href]')].map(l => l.href))"
            )
            for ref in refs:
                url = urlsplit(ref)
                assert url.scheme == "file", f"{current.name} links out of the site: {ref}"
                target = Path(unquote(url.path))
                assert target.is_file(), f"{current.name} links a missing file: {ref}"
                assert site.out in target.parents, f"{current.name} links outside the site: {ref}"
                if url.fragment:
                    anchors.append((target, unquote(url.fragment), current.name))
                if target.suffix == ".html":
                    todo.append(target)
            broken = page.evaluate(
                "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.src)"
            )
            assert broken == [], f"{current.name}: images that did not load: {broken}"
        for target in {t for t, _, _ in anchors}:
            page.goto(target.as_uri())
            ids = set(page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)"))
            missing = [(src, f) for t, f, src in anchors if t == target and f not in ids]
            assert missing == [], f"links to fragments {target.name} does not have: {missing}"
        browser.close()
    assert errors == []
    # the crawl reached every page the site wrote
    assert seen >= set(site.pages), set(site.pages) - seen
