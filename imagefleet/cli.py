"""The `imagefleet` command. Thin: it parses, calls the area packages, and renders.

``raw_main`` is the one place that turns exceptions into exit codes (0 ok, 1 refused, 2 bad input,
3 AWS/tool failure, 130 interrupted) and one-line messages; a traceback only with ``--debug``.
"""

from __future__ import annotations

import errno
import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_support import get_context, json_option
from orchestrator.context import Context
from orchestrator.errors import ExitStatus, ImagefleetError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.local.agents import Handler
    from orchestrator.store import StateStore


class LazyGroup(click.Group):
    """A group whose area commands are imported only when one of them runs.

    ``imagefleet --version``, ``--help`` and light commands never import the statistics, plotting
    or AWS libraries an area's command needs; ``--help`` lists the lazy commands by their one-line
    summary, and ``imagefleet COMMAND --help`` loads just that command.
    """

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, tuple[str, str]] | None = None,
        before_load: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})  # name -> ("module:attribute", one-line summary)
        self.before_load = before_load  # runs before a lazy command's module is imported

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            target, _ = self.lazy[cmd_name]
            module, _, attr = target.partition(":")
            if self.before_load is not None:
                self.before_load()
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit=formatter.width - 6 - len(name))))
            else:
                rows.append((name, self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


AREA_COMMANDS: dict[str, tuple[str, str]] = {
    "bake": (
        "pipelines.cli:bake",
        "Bake a new base with Packer and register it as the next version.",
    ),
    "test": (
        "pipelines.cli:test_command",
        "Boot a base on every cohort type and region and check it.",
    ),
    "promote": (
        "pipelines.stage_cli:promote",
        "Move a base to the next stage once its gates are met, and publish it.",
    ),
    "rollback": (
        "pipelines.stage_cli:rollback",
        "Point a stage back to the newest earlier base not rolled back from.",
    ),
    "resolve": ("pipelines.resolve_cli:resolve", "Print the AMI id a consumer should launch."),
    "friends": ("pipelines.friends_cli:friends", "Friend teams that opt into candidates."),
    "status": (
        "pipelines.status_cli:status",
        "Every family's stages: version, AMI, parent AMI, age, regions.",
    ),
    "history": ("pipelines.status_cli:history", "The audit trail: who did what, when and why."),
    "fleet": (
        "pipelines.fleet.cli:fleet_command",
        "Which groups run which base and OS release; burndown snapshots.",
    ),
    "scorecard": (
        "pipelines.scorecard.cli:scorecard_command",
        "Per family hygiene: release age, EOL, fleet, canary, perf, retirement, upstream, CVEs.",
    ),
    "exposure": (
        "pipelines.exposure.cli:exposure_command",
        "Where a package runs: bases below a version or without a CVE's fix, and their groups.",
    ),
    "iam-policy": (
        "pipelines.iam_cli:iam_policy",
        "Print a least-privilege IAM policy for real AWS.",
    ),
    "accounts": (
        "orchestrator.accounts_cli:accounts_group",
        "Member accounts: the roles imagefleet assumes in them, and whether it can.",
    ),
    "state": (
        "orchestrator.store.cli:state_group",
        "The state store: create the DynamoDB table, migrate to it.",
    ),
    "gc": ("pipelines.gc.cli:gc", "Remove what imagefleet left in AWS that no record owns."),
    "retire": (
        "pipelines.retire.cli:retire",
        "Disable, then deregister, the AMIs of bases out of retention (never what runs).",
    ),
    "run": (
        "pipelines.run_cli:run_command",
        "The main job: bake → tests → perf → candidate → canary → release.",
    ),
    "upstream": (
        "pipelines.upstream_cli:upstream_command",
        "Is each family due a rebake: upstream moved, recipe changed, base too old.",
    ),
    "changelog": (
        "changelog.cli:changelog_group",
        "Changelogs between bases or package manifests.",
    ),
    "perf": ("perf.cli:perf_group", "Benchmark fleets: run, compare, show, cleanup."),
    "canary": ("canary.cli:canary_group", "Canary rollouts across instance-type cohorts."),
    "report": (
        "imagefleet.report_cli:report_command",
        "Write the report site: families, bases, changelogs, perf runs, rollouts, audit.",
    ),
    "leases": (
        "imagefleet.leases_cli:leases_command",
        "Who holds which operation right now: stage moves, bakes, rollouts, perf runs.",
    ),
    "local": (
        "orchestrator.local.cli:local",
        "The embedded AWS endpoint (moto's server on 127.0.0.1).",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=AREA_COMMANDS,
    before_load=lambda: mount(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="IMAGEFLEET_CONFIG",
    help="Config file (default: $IMAGEFLEET_CONFIG, then ./imagefleet.toml).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print results as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="imagefleet")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, json_mode: bool, debug: bool) -> None:
    """Roll OS base images across a fleet: bake, test, promote, canary, benchmark, changelog."""
    obj = ctx.obj if isinstance(ctx.obj, Context) else Context()
    obj.config_path = config_path
    obj.debug = obj.debug or debug
    if json_mode:
        obj.json_mode = True
    ctx.obj = obj


# --- init -----------------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option(
    "--format",
    "template_format",
    type=click.Choice(["hcl2", "json"]),
    default="hcl2",
    show_default=True,
    help="Packer template format to write.",
)
@json_option
def init(directory: Path, force: bool, template_format: str) -> None:
    """Write a working imagefleet.toml and a Packer template for the local endpoint."""
    from importlib import resources

    out = get_context().out
    template = "demo.pkr.hcl" if template_format == "hcl2" else "demo.json"
    files = {
        "imagefleet.toml": directory / "imagefleet.toml",
        template: directory / "packer" / template,
        "demo.manifest": directory / "recipes" / "demo.manifest",
        **{
            f"changelogs/{n}": directory / "recipes" / "changelogs" / n
            for n in (
                "openssl.changelog.Debian",
                "curl.changelog.Debian",
                "openssh-server.changelog.Debian",
            )
        },
    }
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not force:
        raise UsageError(f"already there: {', '.join(existing)}", hint="use --force to overwrite")
    src = resources.files("orchestrator") / "templates" / "init"
    for name, dest in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = (src / name).read_text()
        if name == "imagefleet.toml":
            text = text.replace(
                'template = "packer/demo.pkr.hcl"', f'template = "packer/{template}"'
            )
        dest.write_text(text)
    out.result(
        {"written": [str(p) for p in files.values()]},
        lambda: (
            "wrote "
            + ", ".join(str(p) for p in files.values())
            + "\nnext: imagefleet local up && imagefleet bake demo"
        ),
    )


# --- the areas' local agents ---------------------------------------------------------------------
def register_agent_handlers() -> None:
    """Mount the areas' local agents: the CLI, not the core runner, knows which areas there are."""
    from canary import local_health
    from orchestrator.local import agents as local_agents
    from perf import local_runner

    local_agents.register("canary.local_health", local_health.tick)
    local_agents.register("perf.local_runner", local_runner.tick)
    local_agents.register("orchestrator.local.ssm_agent", _ssm_agent().tick)


def _ssm_agent() -> Any:
    """The local SSM agent, with what image-test commands see of their instance (pipelines)."""
    from orchestrator.local import ssm_agent
    from pipelines import local_imagetest

    return ssm_agent.SsmAgent(local_imagetest.command_environment)


def _listen_for_rollbacks() -> None:
    from pipelines import retro

    retro.listen()


_MOUNTED: list[bool] = []


def mount() -> None:
    """Hand down what only the top layer knows, once, before the first area command loads (so
    ``--version`` and ``--help`` pay nothing for it): the program that runs `imagefleet local
    agents` in the background and the areas' handlers it runs (``orchestrator.local.agents``), and
    pipelines' retrospective draft as the listener of the canary's rolled-back cohorts."""
    if _MOUNTED:
        return
    _MOUNTED.append(True)
    from canary import hooks as canary_hooks
    from orchestrator.local import agents as local_agents

    local_agents.mount([sys.executable, "-m", "imagefleet.cli"], register_agent_handlers)
    canary_hooks.mount(_listen_for_rollbacks)


def virtual_clock_agents() -> dict[str, Handler]:
    """The areas' local agents for a ``VirtualClock`` (``orchestrator.local.agents.attach``), by
    role:
    perf's ``settle`` finishes the benchmark runs it starts within the call, as a virtual clock
    needs; the health agent's waits until a local Prometheus has scraped what it published."""
    from canary import local_health
    from perf import local_runner

    return {
        "health": local_health.settle,
        "benchmarks": local_runner.settle,
        "instances": _ssm_agent().settle,
    }


def in_flight(store: StateStore) -> dict[str, Callable[[], bool]]:
    """By agent role (as ``virtual_clock_agents``): is a record it serves in flight? Read from each
    area's typed records (a rollout's header, a perf run)."""
    from canary import records as canary_records
    from perf import records as perf_records

    return {
        "health": lambda: any(not h.final for h in canary_records.headers(store)),
        "benchmarks": lambda: any(r.running for r in perf_records.runs(store)),
        # image tests keep no record while they run; with no command waiting a tick is one
        # ListCommands per region
        "instances": lambda: True,
    }


def cohort_outcomes(store: StateStore) -> dict[str, str]:
    """Every rollout's cohorts and how each stands (the headers' cohort lines)."""
    from canary import records as canary_records

    return {c.key: c.status for h in canary_records.headers(store) for c in h.cohorts}


# --- entry point ----------------------------------------------------------------------------------
def raw_main(argv: list[str] | None = None, obj: Context | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    obj = obj or Context()
    err = obj.out.stderr
    try:
        rv = cli.main(args=args, prog_name="imagefleet", standalone_mode=False, obj=obj)
        return int(rv) if isinstance(rv, int) else int(ExitStatus.OK)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        err.write("\ninterrupted\n")
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:  # click's own usage errors, in the same one-line style
        err.write(f"error: {_click_message(exc)}\n")
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            command = " ".join(["imagefleet", *exc.ctx.command_path.split()[1:], "--help"])
            err.write(f"hint: '{command}' shows the usage\n")
        bad_input = isinstance(exc, click.UsageError | click.FileError)
        return int(ExitStatus.BAD_INPUT) if bad_input else int(exc.exit_code)
    except ImagefleetError as exc:
        if debug:
            traceback.print_exc(file=err)
        err.write(f"error: {_one_line(exc.message)}\n")
        if exc.hint:
            err.write(f"hint: {_one_line(exc.hint)}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:  # the last line of defence: one line, exit 3
        full = _storage_failure(exc)
        if full and not debug:
            err.write(f"error: {full}\n")
            err.write(
                "hint: free space (or make the state directory writable) and run the same "
                "command again; "
                "it continues from its last recorded step\n"
            )
            return int(ExitStatus.FAILURE)
        if debug:
            traceback.print_exc(file=err)
        err.write(f"error: unexpected {type(exc).__name__}: {exc}\n")
        if not debug:
            err.write("hint: run again with --debug for the traceback\n")
        return int(ExitStatus.FAILURE)


def _storage_failure(exc: BaseException) -> str | None:
    """A full or read-only disk under the state store or an output, said plainly (None: not one)."""
    text = str(exc)
    if type(exc).__module__ == "sqlite3" and any(
        k in text for k in ("disk is full", "readonly database", "disk I/O error", "unable to open")
    ):
        return f"the state store cannot be written: {_one_line(text)}"
    if isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EFBIG,
    ):
        return f"cannot write {_one_line(str(exc.filename or ''))}: {exc.strerror}"
    return None


def _one_line(text: str) -> str:
    """A message as one line: a newline or other control character typed by a user shows escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _click_message(exc: click.ClickException) -> str:
    """One line: ``--port: expected …`` for a bad parameter, click's sentence otherwise."""
    if (
        isinstance(exc, click.BadParameter)
        and exc.param is not None
        and not isinstance(exc, click.MissingParameter)
    ):
        argument = isinstance(exc.param, click.Argument)
        names = str(exc.param.name).upper() if argument or not exc.param.opts else exc.param.opts[0]
        message = f"{names}: {exc.message}"
    else:
        message = exc.format_message()
    return " ".join(message.split())


def main() -> None:
    sys.exit(raw_main())


if __name__ == "__main__":
    main()
