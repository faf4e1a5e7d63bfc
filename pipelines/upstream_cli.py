"""``imagefleet upstream [FAMILY]``: is each family due a rebake, and why (``pipelines.upstream``).

The command parses, calls ``upstream.check`` per family, and renders. It only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from orchestrator import schema
from orchestrator.cli_support import Named, get_context, json_option
from orchestrator.clock import human_age
from orchestrator.errors import ImagefleetError, RefusedError
from orchestrator.output import table

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pipelines.upstream import Upstream


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _age(u: Upstream) -> str:
    if u.age_s is None:
        return "-"
    age = human_age(timedelta(seconds=u.age_s))
    return f"{age} / {human_age(timedelta(seconds=u.max_age_s))}" if u.max_age_s else age


def answer_json(answer: Any) -> dict[str, Any] | str | None:
    return answer if answer is None or isinstance(answer, str) else dict(answer.to_dict())


def answer_cell(answer: dict[str, Any] | str | None) -> str:
    """The family's upstream answer in a few words (``imagefleet upstream`` has the reasons)."""
    if answer is None:
        return "-"
    if isinstance(answer, str):
        return f"unknown: {answer}"
    if not answer["outdated"]:
        return "up to date"
    found = [
        word
        for word, key in (("moved", "moved"), ("recipe", "recipe_changed"), ("too old", "too_old"))
        if answer[key]
    ]
    return "OUTDATED" + (f" ({', '.join(found)})" if found else " (no base)")


def render(
    answers: Sequence[Upstream], failed: Sequence[tuple[str, ImagefleetError]] = ()
) -> RenderableType:
    """The table, then each outdated family's reasons and each unreadable one's error, a line
    each."""
    from rich.console import Group
    from rich.text import Text

    rows = [
        (
            u.family,
            u.parent or "-",
            u.baked_from or "-",
            f"{u.family}:{u.newest}" if u.newest is not None else "-",
            _yes(u.moved),
            _yes(u.recipe_changed),
            _age(u),
            "OUTDATED" if u.outdated else "up to date",
        )
        for u in answers
    ]
    columns = [
        "family",
        "parent now",
        "baked from",
        "newest",
        "moved",
        "recipe changed",
        "age / max_age",
        "outdated",
    ]
    reasons = [Text(f"{u.family}: {r}") for u in answers for r in u.reasons]
    reasons += [Text(f"{name}: cannot tell: {exc.message}") for name, exc in failed]
    return Group(table(columns, rows), *reasons)


@click.command("upstream")
@click.argument("family", required=False, type=Named(schema.FAMILY, "FAMILY"))
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when a family is outdated (for a scheduler or CI), after printing the table.",
)
@json_option
def upstream_command(family: str | None, exit_code: bool) -> None:
    """Is each family due a rebake: upstream's parent moved, the recipe changed, the base too old.

    Reads only. Exit 0 (with --exit-code: 1 when a family is outdated).
    """
    from pipelines import upstream

    obj = get_context()
    names = [obj.settings.family(family).name] if family else sorted(obj.settings.families)
    now = obj.clock.now()
    answers: list[Upstream] = []
    failed: list[tuple[str, ImagefleetError]] = []  # a family whose parent cannot be read
    for name in names:
        try:
            answers.append(upstream.check(obj.aws, obj.settings, obj.store, name, now))
        except ImagefleetError as exc:
            failed.append((name, exc))
    obj.out.result(
        [u.to_dict() for u in answers] + [{"family": n, "error": e.message} for n, e in failed],
        lambda: render(answers, failed),
    )
    if failed:  # the others are shown; the command ends as the first failure does
        raise failed[0][1]
    outdated = [u.family for u in answers if u.outdated]
    if exit_code and outdated:
        raise RefusedError(
            f"outdated upstream: {', '.join(outdated)}",
            hint="'imagefleet run FAMILY --if-changed' bakes what is due",
        )
