"""The `imagefleet` command. Thin: it parses, calls the area packages, and renders.

``raw_main`` is the one place that turns exceptions into exit codes (0 ok, 1 refused, 2 bad input,
3 AWS/tool failure, 130 interrupted) and one-line messages; a traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_support import Bounded, Named, get_context, json_option
from orchestrator.context import Context
from orchestrator.errors import ExitStatus, ImagefleetError, NotFoundError, RefusedError, UsageError
from orchestrator.local import injection
from orchestrator.local.endpoint import LocalEndpoint, seed
from orchestrator.local.faults import parse_spec
from orchestrator.output import table
from orchestrator.schema import AMI_ID, FAMILY

if TYPE_CHECKING:
    from orchestrator.local.agents import Handler


class LazyGroup(click.Group):
    """A group whose area commands are imported only when one of them runs.

    ``imagefleet --version``, ``--help`` and light commands never import the statistics, plotting
    or AWS libraries an area's command needs; ``--help`` lists the lazy commands by their one-line
    summary, and ``imagefleet COMMAND --help`` loads just that command.
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})  # name -> ("module:attribute", one-line summary)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            target, _ = self.lazy[cmd_name]
            module, _, attr = target.partition(":")
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
    "bake": ("pipelines.cli:bake", "Bake a new base with Packer and register it as the next version."),
    "test": ("pipelines.cli:test_command", "Boot a base on every cohort type and region and check it."),
    "promote": ("pipelines.cli:promote", "Move a base to the next stage once its gates are met, and publish it."),
    "rollback": ("pipelines.cli:rollback", "Point a stage back to the newest earlier base not rolled back from."),
    "resolve": ("pipelines.cli:resolve", "Print the AMI id a consumer should launch."),
    "friends": ("pipelines.cli:friends", "Friend teams that opt into candidates."),
    "status": ("pipelines.cli:status", "Every family's stages: version, AMI, age, regions."),
    "history": ("pipelines.cli:history", "The audit trail: who did what, when and why."),
    "fleet": ("pipelines.fleet_cli:fleet_command", "Which groups run which base and OS release; burndown snapshots."),
    "iam-policy": ("pipelines.cli:iam_policy", "Print a least-privilege IAM policy for real AWS."),
    "state": ("orchestrator.state_cli:state_group", "The state store: create the DynamoDB table, migrate to it."),
    "gc": ("pipelines.cli:gc", "Remove what imagefleet left in AWS that no record owns."),
    "run": ("pipelines.cli:run_command", "The main job: bake → tests → perf → candidate → canary → release."),
    "changelog": ("changelog.cli:changelog_group", "Changelogs between bases or package manifests."),
    "perf": ("perf.cli:perf_group", "Benchmark fleets: run, compare, show, cleanup."),
    "canary": ("canary.cli:canary_group", "Canary rollouts across instance-type cohorts."),
}


@click.group(cls=LazyGroup, lazy=AREA_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="FILE", envvar="IMAGEFLEET_CONFIG",
              help="Config file (default: $IMAGEFLEET_CONFIG, then ./imagefleet.toml).")
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
@click.option("--format", "template_format", type=click.Choice(["hcl2", "json"]), default="hcl2", show_default=True,
              help="Packer template format to write.")
@json_option
def init(directory: Path, force: bool, template_format: str) -> None:
    """Write a working imagefleet.toml and a Packer template for the local endpoint."""
    out = get_context().out
    template = "demo.pkr.hcl" if template_format == "hcl2" else "demo.json"
    files = {
        "imagefleet.toml": directory / "imagefleet.toml",
        template: directory / "packer" / template,
        "demo.manifest": directory / "recipes" / "demo.manifest",
        **{f"changelogs/{n}": directory / "recipes" / "changelogs" / n
           for n in ("openssl.changelog.Debian", "curl.changelog.Debian", "openssh-server.changelog.Debian")},
    }
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not force:
        raise UsageError(f"already there: {', '.join(existing)}", hint="use --force to overwrite")
    src = resources.files("orchestrator") / "templates" / "init"
    for name, dest in files.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = (src / name).read_text()
        if name == "imagefleet.toml":
            text = text.replace('template = "packer/demo.pkr.hcl"', f'template = "packer/{template}"')
        dest.write_text(text)
    out.result(
        {"written": [str(p) for p in files.values()]},
        lambda: "wrote " + ", ".join(str(p) for p in files.values())
        + "\nnext: imagefleet local up && imagefleet bake demo",
    )


# --- the embedded endpoint ------------------------------------------------------------------------
@cli.group()
def local() -> None:
    """The embedded AWS endpoint (moto's server on 127.0.0.1)."""


def _endpoint() -> tuple[Context, LocalEndpoint]:
    obj = get_context()
    return obj, LocalEndpoint(obj.settings.state_dir)


@local.command("up")
@click.option("--port", type=Bounded(int, 1, 65535), help="Port to listen on (default: a free one).")
@click.option("--no-seed", is_flag=True, help="Do not create the artifact bucket.")
@click.option("--faults", metavar="SPEC",
              help="FAULT INJECTION: put the fault proxy in front, e.g. throttle=0.1,5xx=0.05,reset=0.02,latency=200ms.")
@click.option("--fault-seed", type=int, default=0, show_default=True, help="Seed of the fault proxy's decisions.")
@click.option("--forget-lost", is_flag=True, help="Mark the bases whose AMIs went with an earlier endpoint as lost.")
@click.option("--no-agents", is_flag=True,
              help="Do not start the local agent runner (the caller runs the agents on its own clock, as the demo does).")
@json_option
def local_up(port: int | None, no_seed: bool, faults: str | None, fault_seed: int, forget_lost: bool,
             no_agents: bool) -> None:
    """Start the endpoint (if not running), seed it, print the environment to use."""
    from orchestrator.local import agents as local_agents
    from orchestrator.local import memory as endpoint_memory

    obj, ep = _endpoint()
    if faults is not None:
        parse_spec(faults)  # bad input before anything starts or is printed
    with obj.out.status("starting the local AWS endpoint"):
        info, started = ep.up(port, faults=faults, fault_seed=fault_seed)
    seeded = {} if no_seed else seed(obj.aws, obj.settings.aws.regions, obj.settings.aws.artifact_bucket)
    restart, lost = endpoint_memory.after_up(obj.store, obj.aws, pid=info.pid, started_at=info.started_at,
                                             url=info.url, forget_lost=forget_lost, actor=obj.actor)
    if lost and not forget_lost:
        obj.out.warn(f"the endpoint was restarted: the AMIs of {', '.join(b.ref for b in lost)} are gone with the "
                     "old one; 'imagefleet local up --forget-lost' marks them lost, 'imagefleet bake' makes new ones")
    agents_pid = None if no_agents else local_agents.start_background(obj.settings.state_dir, obj.settings.path)
    env = info.env(obj.settings.aws.regions[0])
    data = {"running": True, "started": started, "url": info.url, "pid": info.pid, "log": info.log,
            "env": env, "seeded": seeded,
            "agents_pid": agents_pid, "faults": info.faults, "upstream_url": info.upstream_url,
            "restarted": restart.restarted, "lost": [b.ref for b in lost], "forgot_lost": forget_lost}

    def render() -> str:
        lines = [f"local endpoint {'started' if started else 'already running'} at {info.url} (pid {info.pid})",
                 f"local agent runner: pid {agents_pid} (log {obj.settings.state_dir / local_agents.LOG_FILE})"
                 if agents_pid else "local agent runner: not started (--no-agents)"]
        if info.faults:
            lines.append(f"FAULT INJECTION: {info.faults} (fault proxy pid {info.proxy_pid}, moto at {info.upstream_url})")
        if seeded:
            lines.append(f"artifact bucket: s3://{seeded['bucket']}")
        if forget_lost:
            lines.append(f"marked lost: {', '.join(b.ref for b in lost) or 'none'}")
        lines.append("to use it from other AWS tools:")
        lines += [f"  export {k}={v}" for k, v in env.items()]
        return "\n".join(lines)

    obj.out.result(data, render)


@local.command("down")
@json_option
def local_down() -> None:
    """Stop the endpoint (its data is in memory and goes with it)."""
    from orchestrator.local import agents as local_agents

    obj, ep = _endpoint()
    refused: list[RefusedError] = []
    stoppers: tuple[Callable[[], bool], ...] = (
        lambda: local_agents.stop_background(obj.settings.state_dir), ep.down)
    for stop in stoppers:
        try:
            stopped = stop()
        except RefusedError as exc:  # stop what is ours even when one record names a stranger
            refused.append(exc)
    if refused:
        raise RefusedError("; ".join(e.message for e in refused), hint="; ".join(e.hint or "" for e in refused))
    obj.out.result({"stopped": stopped}, lambda: "local endpoint stopped" if stopped else "local endpoint was not running")


@local.command("status")
@json_option
def local_status() -> None:
    """Say whether the endpoint is up (exit 1 when it is not)."""
    obj, ep = _endpoint()
    info = ep.info()
    data = {"running": info is not None,
            **({"url": info.url, "pid": info.pid, "log": info.log, "faults": info.faults} if info else {})}
    obj.out.result(data, lambda: (f"up at {info.url} (pid {info.pid})"
                                  + (f", FAULT INJECTION: {info.faults}" if info.faults else "")) if info else "down")
    if info is None:
        raise click.exceptions.Exit(int(ExitStatus.REFUSED))


@local.command("agents", hidden=True)
@click.option("--interval", type=Bounded(float, 0.01, 3600), default=1.0, show_default=True)
@click.option("--ticks", type=Bounded(int, 0, 10**9), help="Stop after this many rounds (default: run until stopped).")
def local_agents_command(interval: float, ticks: int | None) -> None:
    """Run the local agent runner in the foreground (`local up` starts it in the background)."""
    import logging

    from orchestrator.local import agents as local_agents

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    obj = get_context()
    register_agent_handlers()
    env = local_agents.AgentEnv(aws=obj.aws, state_dir=obj.settings.state_dir,
                                regions=obj.settings.aws.regions, clock=obj.clock)
    local_agents.run(env, interval=interval, ticks=ticks)


def register_agent_handlers() -> None:
    """Mount the areas' local agents: the CLI, not the core runner, knows which areas there are."""
    from canary import local_health
    from orchestrator.local import agents as local_agents
    from perf import local_runner

    local_agents.register("canary.local_health", local_health.tick)
    local_agents.register("perf.local_runner", local_runner.tick)


def virtual_clock_agents() -> dict[str, Handler]:
    """The areas' local agents for a ``VirtualClock`` (``orchestrator.local.agents.attach``), by role:
    perf's ``settle`` finishes the benchmark runs it starts within the call, as a virtual clock needs."""
    from canary import local_health
    from perf import local_runner

    return {"health": local_health.tick, "benchmarks": local_runner.settle}


@local.command("inject")
@click.option("--ami", required=True, type=Named(AMI_ID, "AMI"), help="The base to make worse (AMI id).")
@click.option("--instance-types", "types", default="", help="Comma-separated globs, e.g. 'r5.*' (default: all).")
@click.option("--metric", default="*", show_default=True, help="Metric or benchmark name (glob).")
@click.option("--factor", type=Bounded(float, 0.001, 1000), help="Multiply the metric by this (1.4 = 40% worse).")
@click.option("--clear", "clear_", is_flag=True, help="Remove the injections for --ami instead.")
@json_option
def local_inject(ami: str, types: str, metric: str, factor: float | None, clear_: bool) -> None:
    """FAULT INJECTION (local endpoint only): make one base's metrics worse, for demos and tests."""
    obj = get_context()
    if obj.settings.aws.endpoint_url is None:
        raise UsageError("fault injection works only on the local endpoint (aws.endpoint_url)")
    if clear_:
        n = injection.clear(obj.settings.state_dir, ami)
        obj.out.result({"cleared": n}, lambda: f"cleared {n} injection(s) for {ami}")
        return
    if factor is None:
        raise UsageError("--factor: required unless --clear is given")
    inj = injection.add(obj.settings.state_dir, ami, metric,
                        factor, tuple(t.strip() for t in types.split(",") if t.strip()))
    obj.out.result(inj.__dict__, lambda: f"injected x{factor} on {metric} for {ami} "
                   f"({', '.join(inj.instance_types) or 'all types'}) [id {inj.id}]")


@local.command("fleet")
@click.option("--family", required=True, type=Named(FAMILY, "FAMILY"),
              help="Family whose fleet this is (tag imagefleet:family).")
@click.option("--ami", required=True, help="The base the fleet runs now.")
@click.option("--per-type", type=Bounded(int, 1, 1000), default=10, show_default=True, help="Instances per group.")
@click.option("--region", help="Region (default: the first configured).")
@click.option("--types", default="", help="Comma-separated instance types (default: the family's cohort types).")
@json_option
def local_fleet(family: str, ami: str, per_type: int, region: str | None, types: str) -> None:
    """DEMO: make a launch template and one Auto Scaling group per instance type of FAMILY."""
    from orchestrator.local.fleet import DEFAULT_TYPES, make_fleet

    obj = get_context()
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    if not chosen:
        try:
            chosen = obj.settings.family(family).cohort_instance_types
        except NotFoundError:
            chosen = DEFAULT_TYPES
    data = make_fleet(obj.aws, family, ami, chosen, per_type, region or obj.settings.aws.regions[0])
    obj.out.result(data, lambda: f"fleet of {family} in {data['region']}: "
                   + ", ".join(f"{g['name']} ({g['desired']} × {g['instance_type']})" for g in data["groups"]))


# --- the report site ----------------------------------------------------------------------------------
@cli.command("report")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write the site to (created; its pages are replaced).")
@json_option
def report_command(out_dir: Path) -> None:
    """Write the report site: families, stage history, bases, perf runs, canary rollouts, audit."""
    from orchestrator import report

    obj = get_context()
    site = report.build(obj.store, out_dir)
    obj.out.result(site.to_dict(), lambda: f"wrote {len(site.pages)} pages; open {site.out / 'index.html'}")


# --- leases -------------------------------------------------------------------------------------------
@cli.command("leases")
@json_option
def leases_command() -> None:
    """Who holds which operation right now: stage moves, bakes, rollouts and their groups, perf runs."""
    obj = get_context()
    now = obj.clock.time()
    held = obj.store.leases()

    def state(lease: Any) -> str:
        if lease.expires_at is None:
            return "held until released"
        left = lease.expires_at - now
        return f"expires in {int(left)}s" if left > 0 else f"expired {int(-left)}s ago"

    rows = [{**lease.to_dict(), "state": state(lease)} for lease in held]
    obj.out.result(rows, lambda: table(
        ["lease", "holder", "host", "pid", "command", "since", "state"],
        [(r["name"], r["actor"].rsplit("/", 1)[-1], r["host"], r["pid"] or "-", r["command"],
          datetime.fromtimestamp(r["acquired_at"], UTC).strftime("%Y-%m-%d %H:%M:%S"), r["state"]) for r in rows],
    ) if rows else "no leases held")


# --- entry point ----------------------------------------------------------------------------------
def raw_main(argv: list[str] | None = None, obj: Context | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    obj = obj or Context()
    err = obj.out.err.file
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
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3
        if debug:
            traceback.print_exc(file=err)
        err.write(f"error: unexpected {type(exc).__name__}: {exc}\n")
        if not debug:
            err.write("hint: run again with --debug for the traceback\n")
        return int(ExitStatus.FAILURE)


def _one_line(text: str) -> str:
    """A message as one line: a newline or other control character typed by a user shows escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _click_message(exc: click.ClickException) -> str:
    """One line: ``--port: expected …`` for a bad parameter, click's sentence otherwise."""
    if isinstance(exc, click.BadParameter) and exc.param is not None and not isinstance(exc, click.MissingParameter):
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
