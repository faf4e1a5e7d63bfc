"""``[notify]`` chooses how friend teams are told of a new candidate: a JSON-lines file (the
default), an HTTP webhook or an SNS topic. The webhook is a real HTTP server on 127.0.0.1, the
topic lives on the local endpoint (moto's server) with an SQS queue subscribed to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any as Workspace  # the `workspace` fixture (tests/conftest.py)
from typing import ClassVar

import pytest

from orchestrator import config
from orchestrator.aws import AwsFactory
from orchestrator.errors import ConfigError, ToolError
from pipelines.config import NotifySettings, notify, parse_notify
from pipelines.notify import FileNotifier, Notice, SnsNotifier, WebhookNotifier, configured

TOPIC = "arn:aws:sns:us-east-1:123456789012:imagefleet-friends"


def settings_with(tmp_path: Path, table: str) -> config.Settings:
    path = tmp_path / "imagefleet.toml"
    path.write_text(f'[state]\npath = "state/state.db"\n\n{table}\n')
    return config.load(path)


def notice() -> Notice:
    return Notice(
        "candidate",
        "web",
        "web:2",
        {"us-east-1": "ami-0abc1234"},
        ["payments"],
        "/imagefleet/web/candidate",
        {},
        "2026-12-07T16:00:00Z",
    )


# --- the table ------------------------------------------------------------------------------------
def test_no_table_means_the_file_in_the_state_directory(tmp_path: Path) -> None:
    assert notify(settings_with(tmp_path, "")) == NotifySettings(
        "file", str(tmp_path / "state" / "notifications.jsonl"), 10
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[notify]\nwebhook = "https://hooks.example.com/x"\ntimeout = "3s"',
            NotifySettings("webhook", "https://hooks.example.com/x", 3),
        ),
        (f'[notify]\nsns_topic = "{TOPIC}"', NotifySettings("sns", TOPIC, 10)),
        (
            '[notify]\nfile = "out/notices.jsonl"',
            NotifySettings("file", "{dir}/out/notices.jsonl", 10),
        ),
    ],
)
def test_each_kind_is_read(tmp_path: Path, table: str, expected: NotifySettings) -> None:
    want = NotifySettings(
        expected.kind, expected.target.replace("{dir}", str(tmp_path)), expected.timeout_s
    )
    assert notify(settings_with(tmp_path, table)) == want


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (
            f'[notify]\nwebhook = "https://h.example.com"\nsns_topic = "{TOPIC}"',
            "notify: expected at most one of 'webhook', 'sns_topic' and 'file'",
        ),
        ('[notify]\nwebhook = "ftp://h.example.com"', "notify.webhook: expected an http(s):// URL"),
        (
            '[notify]\nsns_topic = "arn:aws:sqs:us-east-1:123456789012:q"',
            "notify.sns_topic: expected an SNS topic ARN",
        ),
        ('[notify]\nfile = "a\\u0000b"', "notify.file"),
        ('[notify]\ntimeout = "0s"', "notify.timeout: expected at least 1s"),
        ('[notify]\nemail = "x@example.com"', "notify.email"),
    ],
)
def test_a_bad_table_names_file_line_and_key(tmp_path: Path, table: str, needle: str) -> None:
    settings = settings_with(tmp_path, table)  # the core leaves [notify] to pipelines
    with pytest.raises(ConfigError) as caught:
        notify(settings)
    assert caught.value.message.startswith(f"{tmp_path / 'imagefleet.toml'}:")
    assert needle in caught.value.message


def test_parse_without_a_file_gives_the_defaults(tmp_path: Path) -> None:
    assert parse_notify(None, state_dir=tmp_path).kind == "file"


# --- the webhook, against a real HTTP server ------------------------------------------------------
class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("ThisHook", (Hook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/imagefleet", handler
    finally:
        server.shutdown()
        server.server_close()


class Ctx:
    """What ``configured`` reads of a command's context: its settings and its AWS factory."""

    def __init__(self, settings: config.Settings, aws: AwsFactory | None = None) -> None:
        self.settings = settings
        self.aws = aws


def test_a_configured_webhook_receives_the_notice_as_json(
    tmp_path: Path, hook: tuple[str, type[Hook]]
) -> None:
    url, handler = hook
    notifier = configured(Ctx(settings_with(tmp_path, f'[notify]\nwebhook = "{url}"')))  # type: ignore[arg-type]
    assert isinstance(notifier, WebhookNotifier)
    assert notifier.notify(notice()) == url
    [got] = handler.received
    assert got["type"] == "application/json"
    body = got["body"]
    assert isinstance(body, dict) and body["ref"] == "web:2" and body["teams"] == ["payments"]
    assert "imagefleet resolve web --team TEAM" in body["text"]


def test_a_webhook_that_refuses_is_a_tool_failure(
    tmp_path: Path, hook: tuple[str, type[Hook]]
) -> None:
    url, handler = hook
    handler.status = 500
    notifier = configured(Ctx(settings_with(tmp_path, f'[notify]\nwebhook = "{url}"')))  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="did not take the notice"):
        notifier.notify(notice())
    assert len(handler.received) == 1


def test_the_default_appends_to_the_state_directory(tmp_path: Path) -> None:
    notifier = configured(Ctx(settings_with(tmp_path, "")))  # type: ignore[arg-type]
    assert isinstance(notifier, FileNotifier)
    notifier.notify(notice())
    [line] = (tmp_path / "state" / "notifications.jsonl").read_text().splitlines()
    assert json.loads(line)["ref"] == "web:2"


# --- SNS, on the local endpoint
# ---------------------------------------------------------------------
@pytest.mark.integration
def test_a_configured_topic_delivers_to_its_subscribers(tmp_path: Path, aws: AwsFactory) -> None:
    sns, sqs = aws.client("sns", "us-east-1"), aws.client("sqs", "us-east-1")
    topic = sns.create_topic(Name=f"imagefleet-friends-{tmp_path.name[-8:]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"friends-{tmp_path.name[-8:]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    notifier = configured(Ctx(settings_with(tmp_path, f'[notify]\nsns_topic = "{topic}"'), aws))  # type: ignore[arg-type]
    assert isinstance(notifier, SnsNotifier)
    assert notifier.notify(notice()) == topic
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    [envelope] = [json.loads(m["Body"]) for m in messages]
    assert envelope["Subject"] == "imagefleet: web:2 is the new candidate of web"
    assert "Resolve it: imagefleet resolve web" in envelope["Message"]
    assert json.loads(envelope["MessageAttributes"]["imagefleet"]["Value"])["ref"] == "web:2"


def test_iam_policy_grants_publish_on_the_configured_topic(tmp_path: Path) -> None:
    from pipelines.iam import Scope, policy

    scope = Scope.from_settings(settings_with(tmp_path, f'[notify]\nsns_topic = "{TOPIC}"'))
    statements = {s["Sid"]: s for s in policy(["notify"], scope=scope)["Statement"]}
    assert statements["ImagefleetNotify"]["Resource"] in (TOPIC, [TOPIC])
    default = {s["Sid"]: s for s in policy(["notify"], scope=Scope())["Statement"]}
    assert default["ImagefleetNotify"]["Resource"] in (
        "arn:aws:sns:*:*:imagefleet*",
        ["arn:aws:sns:*:*:imagefleet*"],
    )


# --- the job: `imagefleet run` tells friend teams through the configured webhook
# ---------------------
@pytest.mark.integration
@pytest.mark.packer
def test_run_notifies_friend_teams_through_the_configured_webhook(
    workspace: Workspace, hook: tuple[str, type[Hook]]
) -> None:
    url, handler = hook
    workspace.config.write_text(workspace.config.read_text() + f'\n[notify]\nwebhook = "{url}"\n')
    r = workspace.run("run", workspace.family, "--until", "candidate", "--json")
    assert r.code == 0, r.stderr
    [notified] = [s for s in r.json()["steps"] if s["step"] == "notify"]
    assert notified["sent_to"] == url and notified["teams"] == ["payments"]
    [got] = handler.received
    body = got["body"]
    assert (
        isinstance(body, dict)
        and body["ref"] == f"{workspace.family}:1"
        and body["teams"] == ["payments"]
    )
    assert not (workspace.context().settings.state_dir / "notifications.jsonl").exists()
