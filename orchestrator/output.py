"""How commands talk: a table or text for people, ``--json`` for scripts, progress on stderr.

Results go to stdout, progress and notices to stderr, so ``imagefleet status --json | jq`` works
while a long command still shows what it is doing. Progress is a do-nothing display when stderr
is not a terminal (CI logs get one line per step instead of spinner frames).

rich loads on the first thing printed through it: a command whose answer is JSON or raw text
(``changelog diff``, ``--version``) never imports it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table


class Output:
    def __init__(
        self,
        *,
        json_mode: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        transcript: bool = False,
    ) -> None:
        self.json_mode = json_mode
        self.transcript = (
            transcript  # progress as lines even on a terminal: a log to read back (the demo)
        )
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @cached_property
    def out(self) -> Console:
        """stdout as a rich console, made on first use."""
        from rich.console import Console

        # Not a terminal (a pipe, a CI log): wide enough that tables never wrap AMI ids.
        wide = None if getattr(self.stdout, "isatty", lambda: False)() else 200
        return Console(file=self.stdout, highlight=False, soft_wrap=True, width=wide)

    @cached_property
    def err(self) -> Console:
        """stderr as a rich console, made on first use."""
        from rich.console import Console

        return Console(file=self.stderr, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and not self.transcript

    def result(
        self, data: object, render: Callable[[], RenderableType | None] | None = None
    ) -> None:
        """The command's answer: JSON when asked for, else what ``render`` returns (or ``data``)."""
        if self.json_mode:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
            self.stdout.flush()
            return
        shown = render() if render else data
        if shown is not None:
            self.out.print(shown)

    def text(self, text: str) -> None:
        """Raw text on stdout, as is (a rendered document, a policy)."""
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def note(self, message: str) -> None:
        """A progress line on stderr (kept out of --json stdout)."""
        self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    @contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner with a changing message on a terminal; plain lines otherwise."""
        if self.interactive and not self.json_mode:
            with self.err.status(message) as st:
                yield lambda text: st.update(text)
        else:
            self.err.print(message)
            last: list[str] = []

            def update(text: str) -> None:
                if not last or last[-1] != text:
                    last.append(text)
                    # a message of several lines (Packer's AMI summary) stays one indented block
                    self.err.print("\n".join(f"  {t}" for t in text.split("\n")))

            yield update


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Table:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, show_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c)
    for r in rows:  # cells are text, never markup: a reason reading "[/]" or "[red]" shows as typed
        t.add_row(*(Text("" if v is None else printable(str(v))) for v in r))
    return t


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``).

    Free text others typed (a ``--reason``, a team name, a command line in a lease) is shown to
    other operators' terminals; an escape sequence in it must arrive as characters, not act.
    """
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
