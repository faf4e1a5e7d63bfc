"""Free text others typed reaches a terminal as characters: control sequences and markup escaped."""

from __future__ import annotations

import io
from pathlib import Path

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.output import Output, printable
from orchestrator.store import SqliteStore

HOSTILE = "fix\x1b]0;owned\x07\x1b[2J\r\nroot# [red]rm[/] [/]\u202etxt.exe"


def test_printable_escapes_every_control_character() -> None:
    assert printable("a\x1b[31mb\x07\n\x9b\u202ec\td") == "a\\x1b[31mb\\x07\\n\\x9b\\u202ec\\td"
    assert printable("plain text, ünïcode ok") == "plain text, ünïcode ok"


def test_history_and_leases_show_hostile_reasons_escaped(tmp_path: Path) -> None:
    assert (
        raw_main(
            ["init", str(tmp_path)],
            obj=Context(output=Output(stdout=io.StringIO(), stderr=io.StringIO())),
        )
        == 0
    )
    store = SqliteStore(tmp_path / ".imagefleet" / "state.db")
    store.audit(
        f"arn:aws:iam::1:user/ops{HOSTILE}",
        "promote",
        "demo:1",
        reason=HOSTILE,
        details={"note": HOSTILE},
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        raw_main(
            ["--config", str(tmp_path / "imagefleet.toml"), "history"],
            obj=Context(output=Output(stdout=out, stderr=err)),
        )
        == 0
    ), err.getvalue()
    text = out.getvalue()
    assert not any(c in text for c in "\x1b\x07\r\u202e"), repr(text)
    assert (
        "\\x1b]0;owned\\x07" in text and "[red]rm[/]" in text
    )  # shown as typed, neither acted on nor eaten
