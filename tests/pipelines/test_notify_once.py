"""A kill right after notifying friend teams does not make the rerun notify them twice."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from orchestrator.engine import KillPoint, Operation
from orchestrator.store import SqliteStore
from pipelines.notify import FileNotifier, Notice, WebhookNotifier


def notice(key: str) -> Notice:
    return Notice(
        "candidate",
        "demo",
        "demo:2",
        {"us-east-1": "ami-0abc1234"},
        ["payments"],
        "/imagefleet/demo/candidate",
        key=key,
    )


def test_killed_after_sending_the_rerun_sends_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "state.db")
    sent = tmp_path / "notifications.jsonl"
    notifier = FileNotifier(sent)

    def attempt() -> str:
        op = Operation(
            store, "run:demo:2:abc", "run", {"family": "demo"}
        )  # a rerun resumes the same op
        return op.step("notify", lambda: notifier.notify(notice(f"{op.id}:notify")))

    monkeypatch.setenv("IMAGEFLEET_KILL_AT", "notify:acted")  # sent, not yet journaled
    with pytest.raises(KillPoint):
        attempt()
    monkeypatch.delenv("IMAGEFLEET_KILL_AT")
    assert attempt() == str(sent)
    lines = [json.loads(line) for line in sent.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["key"] == "run:demo:2:abc:notify"
    notifier.notify(notice("run:demo:3:def:notify"))  # another operation's notice does go out
    assert len(sent.read_text().splitlines()) == 2


def test_webhooks_carry_the_idempotency_key(tmp_path: Path) -> None:
    got: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append(self.headers.get("Idempotency-Key"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        WebhookNotifier(url).notify(notice("run:demo:2:abc:notify"))
        WebhookNotifier(url).notify(notice("run:demo:2:abc:notify"))
    finally:
        server.shutdown()
    assert got == ["run:demo:2:abc:notify"] * 2  # the same key on a repeat: the receiver drops it
