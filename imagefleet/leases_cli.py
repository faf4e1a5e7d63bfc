"""`imagefleet leases`: who holds which operation right now (stage moves, bakes, rollouts and
their groups, perf runs), and ``--release`` to free one left behind (forced, audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from orchestrator.cli_support import get_context, json_option
from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.store import Lease


@click.command("leases")
@click.option(
    "--release",
    "release_name",
    metavar="NAME",
    help="Free this lease (a rollout's group claim left behind, say); needs --force and --reason.",
)
@click.option("--force", is_flag=True, help="Confirm --release: the holder is not asked.")
@click.option("--reason", help="Why the lease is released (recorded in the audit trail).")
@json_option
def leases_command(release_name: str | None, force: bool, reason: str | None) -> None:
    """Who holds which operation right now: stage moves, bakes, rollouts and their groups, perf
    runs."""
    from orchestrator.output import table

    obj = get_context()
    now = obj.clock.time()
    if release_name is not None or force or reason is not None:
        _release_lease(release_name, force, reason)
        return
    held = obj.store.leases()

    def state(lease: Lease) -> str:
        if lease.expires_at is None:
            return "held until released"
        left = lease.expires_at - now
        return f"expires in {int(left)}s" if left > 0 else f"expired {int(-left)}s ago"

    rows = [{**lease.to_dict(), "state": state(lease)} for lease in held]
    obj.out.result(
        rows,
        lambda: (
            table(
                ["lease", "holder", "host", "pid", "command", "since", "state"],
                [
                    (
                        r["name"],
                        r["actor"].rsplit("/", 1)[-1],
                        r["host"],
                        r["pid"] or "-",
                        r["command"],
                        datetime.fromtimestamp(r["acquired_at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
                        r["state"],
                    )
                    for r in rows
                ],
            )
            if rows
            else "no leases held"
        ),
    )


def _release_lease(name: str | None, force: bool, reason: str | None) -> None:
    from orchestrator.store import leases

    if not name:
        raise UsageError(
            "--force and --reason go with --release NAME",
            hint="'imagefleet leases' lists every lease",
        )
    if not force or not (reason or "").strip():
        raise UsageError(
            f"--release {name}: needs --force and a --reason (it is audited)",
            hint=f"imagefleet leases --release {name} --force --reason 'TEXT'",
        )
    obj = get_context()
    lease = leases.find(obj.store, name)  # before the caller's identity is looked up in AWS
    alive = leases.force_release(
        obj.store, lease, actor=obj.actor, reason=str(reason), now=obj.clock.time()
    )
    if alive:
        obj.out.warn(
            f"{name}'s holder looked alive (pid {lease.pid} on {lease.host}, {lease.command!r}); "
            "it will lose the lease at its next heartbeat"
        )
    obj.out.result(
        {"released": name, "holder": lease.to_dict(), "holder_alive": alive},
        lambda: f"released {name} (held by {lease.actor.rsplit('/', 1)[-1]}, {lease.command!r})",
    )
