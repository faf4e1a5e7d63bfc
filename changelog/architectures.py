"""dpkg's architecture names, to tell a manifest's ``${Architecture}`` column from ``${Source}``.

The list is `architectures.txt` beside this module: ``dpkg-architecture -L`` plus ``all``. It is
data, not a rule, so a third column is read as architectures only when every value is one of them.
"""

from __future__ import annotations

from functools import cache

__all__ = ["is_architecture", "known_architectures"]


@cache
def known_architectures() -> frozenset[str]:
    """The architecture names dpkg knows (``amd64``, ``arm64``, ``i386``, ``all``…)."""
    from importlib import resources  # read once, when a manifest has a third column

    text = (resources.files("changelog") / "architectures.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_architecture(name: str) -> bool:
    """Whether ``name`` is a dpkg architecture name."""
    return name in known_architectures()
