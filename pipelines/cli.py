"""Commands of the image lifecycle: bake, test, promote, rollback, resolve, friends, status, history."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Attach the pipeline commands to the root `imagefleet` group."""
