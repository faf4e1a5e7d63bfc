"""Small click pieces every area's commands share: the context object, ``--json``, ``--wait``,
and parameter types that bound what users type (finite numbers, names, writable outputs).

Imported by every command module, so it imports only click and the core's light modules; the
validators it calls load when a parameter is checked."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from orchestrator.context import Context
from orchestrator.errors import LeaseHeldError, UsageError

if TYPE_CHECKING:
    from orchestrator.schema import Pattern

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
        "--json",
        "json_mode",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json,
        help="Print the result as JSON.",
    )(f)


def accounts_option(f: F) -> F:
    """``--accounts A,B``: the member accounts a reading command reads besides the caller's own
    (``orchestrator.reach``; empty: every ``[accounts.NAME]``), passed as ``accounts``."""
    return click.option(
        "--accounts",
        "accounts",
        default="",
        metavar="A,B",
        help="Member accounts to read besides the caller's own (default: every [accounts.NAME]).",
    )(f)


def wait_option(f: F) -> F:
    """``--wait``: when another process holds the lease this command needs, wait for it."""
    return click.option(
        "--wait",
        is_flag=True,
        help="If another operator or CI job holds this operation's lease, wait for it instead of "
        "stopping.",
    )(f)


def lease_waiter(obj: Context) -> Callable[[LeaseHeldError], None]:
    """A progress note per poll while a ``--wait`` command waits for someone else's lease."""
    seen: set[str] = set()

    def on_wait(held: LeaseHeldError) -> None:
        key = f"{held.lease.name}:{held.lease.owner}"
        if key not in seen:
            seen.add(key)
            obj.out.note(f"waiting: {held.message}")

    return on_wait


class Bounded(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A finite number in [lo, hi]: click's FloatRange lets nan through, and inf past an open
    bound."""

    def __init__(self, kind: type[int | float], lo: float, hi: float) -> None:
        self.kind, self.lo, self.hi = kind, lo, hi
        self.name = "integer" if kind is int else "number"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from orchestrator.schema import shown

        try:
            number = value if isinstance(value, self.kind) else self.kind(str(value).strip())
        except (ValueError, OverflowError):
            number = None
        if number is None or not math.isfinite(number) or not self.lo <= number <= self.hi:
            self.fail(
                f"expected {'an integer' if self.kind is int else 'a number'} in "
                f"[{self.lo:g}, {self.hi:g}], got {shown(value)}",
                param,
                ctx,
            )
        return number


class Named(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A name typed on the command line, matched in full against an explicit pattern."""

    def __init__(self, pattern: Pattern, metavar: str = "NAME") -> None:
        self.pattern, self.name = pattern, metavar.lower()

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        from orchestrator.schema import shown

        if not self.pattern.matches(value):
            self.fail(f"expected {self.pattern.what}, got {shown(value)}", param, ctx)
        return str(value)


def writable(
    directory: bool = False,
) -> Callable[[click.Context, click.Parameter, str | Path | None], str | Path | None]:
    """A click callback: the output path must be writable before the command does any work."""

    def check(
        ctx: click.Context, param: click.Parameter, value: str | Path | None
    ) -> str | Path | None:
        if value is None:
            return None
        from orchestrator import inputs

        try:
            option = param.opts[0] if param.opts else str(param.name)
            inputs.check_writable(Path(value), option, directory=directory)
        except UsageError as exc:
            raise click.BadParameter(exc.message.split(": ", 1)[-1], ctx, param) from None
        return value

    return check
