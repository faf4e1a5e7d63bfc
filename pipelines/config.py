"""The pipelines' tables of imagefleet.toml: ``[gates]`` (what a base must show to enter a stage)
and ``[notify]`` (where friend teams are told of a new candidate).

The core's config loader keeps them as free-form data (``settings.raw``), like ``[canary]`` and
``[perf]``; this module validates them through ``orchestrator.schema`` (``GATES`` and ``NOTIFY``
hold every default) when a command first needs them. Every error is a ``ConfigError`` that names
file:line and the key (``gates.release.soak``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import schema as s

if TYPE_CHECKING:
    from orchestrator.config import Settings

GATE_KINDS = ("image_tests", "perf", "canary", "soak")


@dataclass(frozen=True)
class GateSettings:
    """Gates a base must pass to enter ``stage`` (from the stage before it)."""

    stage: str
    require: tuple[str, ...] = ()
    soak_seconds: int = 0


def _gate(require: tuple[str, ...]) -> s.Table:
    return s.Table(
        fields={
            "require": s.List(
                require,
                item=s.Choice(options=GATE_KINDS),
                what=f"a list of gate names from {', '.join(GATE_KINDS)}",
            ),
            "soak": s.Duration("0s"),
        }
    )


GATES = s.Table(fields={"candidate": _gate(("image_tests",)), "release": _gate(("image_tests",))})


def parse_gates(
    raw: Mapping[str, Any] | None, *, path: Path | None = None, text: str = ""
) -> dict[str, GateSettings]:
    """Validate a ``[gates]`` table (None or {} gives the defaults); errors name file:line and
    key."""
    doc = GATES.read(dict(raw or {}), "gates", s.Where(path, text))
    return {stage: _gate_settings(stage, g) for stage, g in doc.items()}


def gates(settings: Settings) -> dict[str, GateSettings]:
    """The ``[gates]`` table of loaded settings, by target stage (``candidate``, ``release``)."""
    return parse_gates(settings.raw.get("gates"), path=settings.path, text=settings.text)


def _gate_settings(stage: str, g: dict[str, Any]) -> GateSettings:
    """A soak longer than zero is a gate of its own, whether or not ``require`` names it."""
    require = g["require"]
    if g["soak"] and "soak" not in require:
        require = (*require, "soak")
    return GateSettings(stage=stage, require=require, soak_seconds=g["soak"])


# --- [notify] -------------------------------------------------------------------------------------
NOTIFY_FILE = "notifications.jsonl"  # in the state directory, when [notify] names nothing
_WEBHOOK = s.Pattern(r"https?://[^\s\x00-\x1f\x7f]{1,2000}", "an http(s):// URL")
_TOPIC = s.Pattern(
    r"arn:aws[a-z-]*:sns:[a-z]{2}(-gov)?-[a-z]+-[0-9]:[0-9]{12}:[A-Za-z0-9_-]{1,256}",
    "an SNS topic ARN like 'arn:aws:sns:us-east-1:123456789012:imagefleet-friends'",
)
_FILE = s.Pattern(r"[^\x00-\x1f\x7f]{1,1024}", "a path (no control characters)")
NOTIFY = s.Table(
    fields={
        "webhook": s.Str(None, _WEBHOOK),
        "sns_topic": s.Str(None, _TOPIC),
        "file": s.Str(None, _FILE),
        "timeout": s.Duration("10s", lo=1),  # the webhook's; SNS calls retry like every AWS call
    }
)
NOTIFY_KINDS = {"webhook": "webhook", "sns_topic": "sns", "file": "file"}


@dataclass(frozen=True)
class NotifySettings:
    """Where friend teams are told of a new candidate: ``kind`` is file, webhook or sns, ``target``
    the path, URL or topic ARN."""

    kind: str
    target: str
    timeout_s: int = 10


def parse_notify(
    raw: Mapping[str, Any] | None, *, state_dir: Path, path: Path | None = None, text: str = ""
) -> NotifySettings:
    """Validate a ``[notify]`` table: at most one of webhook, sns_topic and file (none: the file
    ``notifications.jsonl`` in the state directory); a relative file is relative to the config
    file."""
    w = s.Where(path, text)
    d = NOTIFY.read(dict(raw or {}), "notify", w)
    given = [key for key in NOTIFY_KINDS if d[key] is not None]
    if len(given) > 1:
        raise w.error("notify", "at most one of 'webhook', 'sns_topic' and 'file'", given)
    if not given:
        return NotifySettings("file", str(state_dir / NOTIFY_FILE), d["timeout"])
    key = given[0]
    target = d[key]
    if key == "file" and not Path(target).is_absolute():
        target = str((path.parent if path else Path.cwd()) / target)
    return NotifySettings(NOTIFY_KINDS[key], target, d["timeout"])


def notify(settings: Settings) -> NotifySettings:
    """The ``[notify]`` table of loaded settings."""
    return parse_notify(
        settings.raw.get("notify"),
        state_dir=settings.state_dir,
        path=settings.path,
        text=settings.text,
    )
