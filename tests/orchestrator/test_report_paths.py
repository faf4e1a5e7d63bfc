"""`report --out DIR` writes only inside DIR: planted symbolic links are refused, never followed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output


def report(tmp_path: Path, out: str) -> tuple[int, str]:
    """`imagefleet report --out OUT` in a fresh workspace (no endpoint needed: the report reads the
    store)."""
    ws = tmp_path / "ws"
    if not ws.exists():
        assert (
            raw_main(
                ["init", str(ws)],
                obj=Context(output=Output(stdout=io.StringIO(), stderr=io.StringIO())),
            )
            == 0
        )
    err = io.StringIO()
    code = raw_main(
        ["--config", str(ws / "imagefleet.toml"), "report", "--out", out],
        obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
    )
    return code, err.getvalue()


def test_a_site_is_written_and_rewritten_in_place(tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert report(tmp_path, str(out))[0] == 0
    assert (out / "index.html").is_file() and (out / "assets" / "style.css").is_file()
    (out / "stale.html").write_text("old")
    assert report(tmp_path, str(out))[0] == 0
    assert (out / "index.html").is_file() and not (
        out / "stale.html"
    ).exists()  # replaced as a whole
    assert [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")
    ] == []  # no staging left


@pytest.mark.parametrize("planted", ["index.html", "assets", "runs/x.html"])
def test_planted_links_are_refused_and_nothing_outside_is_written(
    tmp_path: Path, planted: str
) -> None:
    victim_file, victim_dir = tmp_path / "victim.txt", tmp_path / "elsewhere"
    victim_file.write_text("precious")
    victim_dir.mkdir()
    out = tmp_path / "site"
    (out / "runs").mkdir(parents=True)
    (out / planted).symlink_to(victim_dir if planted == "assets" else victim_file)
    code, err = report(tmp_path, str(out))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert (
        lines[0].startswith("error: --out")
        and f"{out / planted}" in lines[0]
        and "symbolic link" in lines[0]
    )
    assert lines[1].startswith("hint:") and len(lines) == 2
    assert victim_file.read_text() == "precious" and list(victim_dir.iterdir()) == []
    assert (
        (out / planted).is_symlink() and not (out / "index.html").exists()
    ) or planted == "index.html"


def test_an_out_dir_that_is_itself_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    code, err = report(tmp_path, str(tmp_path / "link"))
    assert code == 2 and "symbolic link" in err and list((tmp_path / "real").iterdir()) == []


def test_an_unwritable_place_is_bad_input(tmp_path: Path) -> None:
    code, err = report(tmp_path, "/proc/self/x")
    assert (
        code == 2
        and err.startswith("error: --out /proc/self/x: cannot write in")
        and "unexpected" not in err
    )
