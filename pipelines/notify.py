"""Telling friend teams that a new candidate is out, with its changelog.

A ``Notifier`` takes one ``Notice`` (what happened to which base, the friend teams concerned, the
changelog summary and links). Three kinds, chosen by ``[notify]`` (``pipelines/config.py``;
``configured`` builds the one configured): a JSON-lines file (the default; on the embedded
endpoint that is where friend teams "receive" it), an HTTP webhook (a JSON POST, e.g. a chat
incoming webhook or an internal service), and an SNS topic (e-mail, SQS or Lambda subscribers).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.errors import ToolError

if TYPE_CHECKING:
    from orchestrator.aws import AwsFactory
    from orchestrator.context import Context


@dataclass
class Notice:
    event: str  # e.g. "candidate": a new candidate friend teams can resolve
    family: str
    ref: str
    amis: dict[str, str]
    teams: list[str]
    parameter: str
    changelog: dict[str, Any] = field(default_factory=dict)
    at: str = ""
    # The same for every attempt to send this notice (from the operation that sends it): a rerun
    # after a kill between sending and journaling sends the same key, and receivers drop repeats.
    key: str = ""

    def subject(self) -> str:
        return f"imagefleet: {self.ref} is the new {self.event} of {self.family}"

    def text(self) -> str:
        resolve = (
            f"imagefleet resolve {self.family} --team TEAM (or the SSM parameter {self.parameter})"
        )
        lines = [self.subject(), "", f"Resolve it: {resolve}"]
        lines += [f"  {region}: {ami}" for region, ami in self.amis.items()]
        from changelog.records import summaries

        for log in summaries(self.changelog).values():
            lines.append(
                f"Changes vs {self.family}:{log.against}: "
                + ", ".join(f"{v} {k}" for k, v in log.counts.items())
                + f"; {log.cves} CVEs"
            )
            if log.uris.get("md"):
                lines.append(f"  changelog: {log.uris['md']}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Notifier(Protocol):
    def notify(self, notice: Notice) -> str:
        """Deliver the notice; returns where it went (for the journal)."""


class FileNotifier:
    """Appends each notice as one JSON line (the local default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def notify(self, notice: Notice) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if notice.key and self.path.exists():
            with self.path.open(encoding="utf-8", errors="replace") as f:
                if any(json.loads(line).get("key") == notice.key for line in f if line.strip()):
                    return str(self.path)  # sent before the rerun: not again
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({**notice.to_dict(), "text": notice.text()}) + "\n")
        return str(self.path)


class WebhookNotifier:
    """POSTs the notice as JSON (``text`` holds a readable summary for chat webhooks)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def notify(self, notice: Notice) -> str:
        body = json.dumps({**notice.to_dict(), "text": notice.text()}).encode()
        headers = {
            "Content-Type": "application/json",
            **({"Idempotency-Key": notice.key} if notice.key else {}),
        }  # receivers drop repeats
        req = urllib.request.Request(self.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ToolError(f"webhook {self.url} did not take the notice: {exc}") from exc
        return self.url


class SnsNotifier:
    """Publishes to an SNS topic (subject and readable text; the notice as a JSON attribute)."""

    def __init__(self, aws: AwsFactory, topic_arn: str) -> None:
        self.aws = aws
        self.topic_arn = topic_arn

    def notify(self, notice: Notice) -> str:
        region = self.topic_arn.split(":")[3]
        # a FIFO topic drops a repeat of the key within five minutes; a standard topic's
        # subscribers find the key in the attribute
        dedupe = (
            {"MessageDeduplicationId": notice.key[:128], "MessageGroupId": notice.family}
            if notice.key and self.topic_arn.endswith(".fifo")
            else {}
        )
        self.aws.client("sns", region).publish(
            TopicArn=self.topic_arn,
            Subject=notice.subject()[:100],
            Message=notice.text(),
            MessageAttributes={
                "imagefleet": {"DataType": "String", "StringValue": json.dumps(notice.to_dict())}
            },
            **dedupe,
        )
        return self.topic_arn


def configured(ctx: Context) -> Notifier:
    """The notifier ``[notify]`` chooses (a bad table is a ConfigError before anything is sent)."""
    from pipelines.config import notify

    chosen = notify(ctx.settings)
    if chosen.kind == "webhook":
        return WebhookNotifier(chosen.target, timeout=chosen.timeout_s)
    if chosen.kind == "sns":
        return SnsNotifier(ctx.aws, chosen.target)
    return FileNotifier(Path(chosen.target))
