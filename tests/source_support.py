"""What the source checks (adapters, the thin CLI, IAM's calls in source) recognise in the AST."""

from __future__ import annotations

import ast


def place_client(node: ast.AST) -> bool:
    """``client(aws, "ec2", place)`` (``canary.places.client``): a client of a group's account."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "client"
        and len(node.args) == 3
    )
