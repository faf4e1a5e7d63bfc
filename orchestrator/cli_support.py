"""Small click pieces every area's commands share: the context object, ``--json`` and ``--wait``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from orchestrator.context import Context

F = TypeVar("F", bound=Callable[..., Any])


def get_context() -> Context:
    """The imagefleet Context of the running command (a fresh one when run outside the CLI root)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Context):
        root.obj = Context()
    return root.obj


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        get_context().json_mode = True
    return value


def json_option(f: F) -> F:
    """``--json``: print the result as JSON on stdout (progress stays on stderr)."""
    return click.option(
        "--json", "json_mode", is_flag=True, expose_value=False, is_eager=True, callback=_set_json,
        help="Print the result as JSON.",
    )(f)


def wait_option(f: F) -> F:
    """``--wait``: when another process holds the lease this command needs, wait for it."""
    return click.option(
        "--wait", is_flag=True,
        help="If another operator or CI job holds this operation's lease, wait for it instead of stopping.",
    )(f)


def lease_waiter(obj: Context) -> Callable[[Any], None]:
    """A progress note per poll while a ``--wait`` command waits for someone else's lease."""
    seen: set[str] = set()

    def on_wait(held: Any) -> None:
        key = f"{held.lease.name}:{held.lease.owner}"
        if key not in seen:
            seen.add(key)
            obj.out.note(f"waiting: {held.message}")

    return on_wait
