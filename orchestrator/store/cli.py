"""`imagefleet state`: create the DynamoDB state table, copy a SQLite store into it. Thin: the work
is in ``orchestrator.store.dynamodb`` and ``orchestrator.store.migrate``."""

from __future__ import annotations

import click

from orchestrator.cli_support import get_context, json_option
from orchestrator.errors import NotFoundError
from orchestrator.output import table
from orchestrator.store import SqliteStore
from orchestrator.store.dynamodb import DynamoStore
from orchestrator.store.migrate import migrate


@click.group("state")
def state_group() -> None:
    """The state store: the DynamoDB table a team shares, and moving a SQLite store into it."""


@state_group.command("init")
@json_option
def init_command() -> None:
    """Create the DynamoDB table [state] table names (on-demand, TTL on), or finish setting it
    up."""
    obj = get_context()
    store = DynamoStore.from_settings(obj.settings, obj.aws)
    created = store.init_table()
    region = obj.settings.aws.regions[0]
    obj.out.result(
        {"table": store.table, "region": region, "created": created, "ttl_attribute": "ttl"},
        lambda: (
            f"{'created' if created else 'found'} state table {store.table} in {region} (TTL on "
            "'ttl')"
            + (
                '\nnext: set [state] backend = "dynamodb", or \'imagefleet state migrate --to '
                "dynamodb'"
                if obj.settings.state.backend != "dynamodb"
                else ""
            )
        ),
    )


@state_group.command("migrate")
@click.option(
    "--to",
    "target",
    type=click.Choice(["dynamodb"]),
    required=True,
    help="Where to copy the store.",
)
@click.option("--force", is_flag=True, help="Write even though the table already has data.")
@json_option
def migrate_command(target: str, force: bool) -> None:
    """Copy the SQLite store at [state] path into the DynamoDB table [state] table names."""
    obj = get_context()
    path = obj.settings.state.path
    if not path.is_file():
        raise NotFoundError(
            f"no SQLite state store at {path}", hint="[state] path names the store to copy"
        )
    dst = DynamoStore.from_settings(obj.settings, obj.aws)
    counts = migrate(SqliteStore(path), dst, force=force)
    obj.out.result(
        {"from": str(path), "to": dst.table, "copied": counts},
        lambda: table(["records", "copied"], sorted(counts.items()), title=f"{path} → {dst.table}"),
    )
    obj.out.note(f'next: set [state] backend = "{target}" in the config')
