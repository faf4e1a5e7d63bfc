"""`imagefleet local …`: the embedded AWS endpoint (moto's server on 127.0.0.1), its agent runner,
fault injection and demo fleets.

Mounted lazily by ``imagefleet.cli`` (like the areas' commands), so commands that never touch the
endpoint do not import its process management, fault proxy and HTTP machinery.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from orchestrator.cli_support import Bounded, Named, get_context, json_option
from orchestrator.context import Context
from orchestrator.errors import NotFoundError, RefusedError, UsageError
from orchestrator.local import injection, publisher
from orchestrator.local.endpoint import LocalEndpoint, seed, state_table
from orchestrator.local.faults import parse_spec
from orchestrator.local.publish_cli import publish_command
from orchestrator.schema import ACCOUNT_NAME, AMI_ID, FAMILY, REGION

__all__ = ["local"]


@click.group()
def local() -> None:
    """The embedded AWS endpoint (moto's server on 127.0.0.1)."""


def _endpoint() -> tuple[Context, LocalEndpoint]:
    obj = get_context()
    return obj, LocalEndpoint(obj.settings.state_dir)


@local.command("up")
@click.option(
    "--port", type=Bounded(int, 1, 65535), help="Port to listen on (default: a free one)."
)
@click.option("--no-seed", is_flag=True, help="Do not create the artifact bucket.")
@click.option(
    "--faults",
    metavar="SPEC",
    help="FAULT INJECTION: put the fault proxy in front, e.g. "
    "throttle=0.1,5xx=0.05,reset=0.02,latency=200ms.",
)
@click.option(
    "--fault-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the fault proxy's decisions.",
)
@click.option(
    "--forget-lost",
    is_flag=True,
    help="Mark the bases whose AMIs went with an earlier endpoint as lost.",
)
@click.option(
    "--no-agents",
    is_flag=True,
    help="Do not start the local agent runner (the caller runs the agents on its own clock, as "
    "the demo does).",
)
@click.option(
    "--prometheus",
    "with_prometheus",
    is_flag=True,
    help="Also start a local Prometheus server (Debian's prometheus) that scrapes the local "
    "instances' metrics; set [canary] prometheus_url to the URL printed.",
)
@click.option(
    "--prometheus-port",
    type=Bounded(int, 1, 65535),
    default=19090,
    show_default=True,
    help="Port of the local Prometheus (with --prometheus; not 9090, where Debian's own "
    "prometheus service listens).",
)
@json_option
def local_up(
    port: int | None,
    no_seed: bool,
    faults: str | None,
    fault_seed: int,
    forget_lost: bool,
    no_agents: bool,
    with_prometheus: bool,
    prometheus_port: int,
) -> None:
    """Start the endpoint (if not running), seed it, print the environment to use."""
    from orchestrator.local import agents as local_agents
    from orchestrator.local import memory as endpoint_memory
    from orchestrator.local.fleet import member_role

    obj, ep = _endpoint()
    if faults is not None:
        parse_spec(faults)  # bad input before anything starts or is printed
    if with_prometheus:
        from orchestrator.local import prometheus

        prometheus.binary()  # a missing server is said before the endpoint starts
    running = ep.info()
    if running is not None and faults is not None and faults != running.faults:
        # never silently ignored: the faults of a running endpoint are fixed when it starts
        now = f"with faults {running.faults!r}" if running.faults else "without faults"
        raise UsageError(
            f"--faults {faults!r}: the local endpoint is already running {now} (pid "
            f"{running.pid}); "
            "nothing was changed",
            hint="'imagefleet local down', then 'imagefleet local up --faults SPEC'",
        )
    with obj.out.status("starting the local AWS endpoint"):
        info, started = ep.up(port, faults=faults, fault_seed=fault_seed)
    seeded = (
        {} if no_seed else seed(obj.aws, obj.settings.aws.regions, obj.settings.aws.artifact_bucket)
    )
    # the families' source_parameter names, as their vendor publishes them on AWS
    parameters = [] if no_seed else publisher.seed(obj.aws, obj.settings)
    # each [accounts.NAME] role, made in its account as a StackSet would on AWS (docs/aws.md)
    members = [] if no_seed else [member_role(obj.aws, name) for name in obj.settings.accounts]
    table = (
        None  # the team backend's table lives on the endpoint too: make it before the store is read
    )
    if obj.settings.state.backend == "dynamodb":
        table = {
            "name": obj.settings.state.table,
            "created": state_table(obj.aws, obj.settings.aws.regions[0], obj.settings.state.table),
        }
    restart, lost = endpoint_memory.after_up(
        obj.store,
        obj.aws,
        pid=info.pid,
        started_at=info.started_at,
        url=info.url,
        forget_lost=forget_lost,
        actor=obj.actor,
    )
    if lost and not forget_lost:
        obj.out.warn(
            f"the endpoint was restarted: the AMIs of {', '.join(b.ref for b in lost)} are gone "
            "with the "
            "old one; 'imagefleet local up --forget-lost' marks them lost, 'imagefleet bake' "
            "makes new ones"
        )
    prom = None
    if with_prometheus:
        from orchestrator.local.prometheus import LocalPrometheus

        with obj.out.status("starting the local Prometheus") as progress:
            prom, prom_started = LocalPrometheus(obj.settings.state_dir).up(
                prometheus_port, progress=progress
            )
    agents_pid = (
        None
        if no_agents
        else local_agents.start_background(obj.settings.state_dir, obj.settings.path)
    )
    env = info.env(obj.settings.aws.regions[0])
    data = {
        "running": True,
        "started": started,
        "url": info.url,
        "pid": info.pid,
        "log": info.log,
        "env": env,
        "seeded": seeded,
        "seeded_parameters": parameters,
        "member_roles": members,
        "state_table": table,
        "agents_pid": agents_pid,
        "faults": info.faults,
        "upstream_url": info.upstream_url,
        "restarted": restart.restarted,
        "lost": [b.ref for b in lost],
        "forgot_lost": forget_lost,
        "prometheus": None if prom is None else {**prom.to_json(), "started": prom_started},
    }

    def render() -> str:
        lines = [
            f"local endpoint {'started' if started else 'already running'} at {info.url} (pid "
            f"{info.pid})",
            f"local agent runner: pid {agents_pid} (log "
            f"{obj.settings.state_dir / local_agents.LOG_FILE})"
            if agents_pid
            else "local agent runner: not started (--no-agents)",
        ]
        if info.faults:
            lines.append(
                f"FAULT INJECTION: {info.faults} (fault proxy pid {info.proxy_pid}, moto at "
                f"{info.upstream_url})"
            )
        if seeded:
            lines.append(f"artifact bucket: s3://{seeded['bucket']}")
        lines += [f"published {p['name']} in {p['region']}: {p['value']}" for p in parameters]
        if table:
            lines.append(
                f"state table: {table['name']} "
                f"({'created' if table['created'] else 'already there'})"
            )
        if forget_lost:
            lines.append(f"marked lost: {', '.join(b.ref for b in lost) or 'none'}")
        if prom is not None:
            lines.append(
                f"local Prometheus {'started' if prom_started else 'already running'} at "
                f"{prom.url} (pid {prom.pid}, scraping every {prom.scrape_interval} the "
                f'instances in {prom.targets}); for the canary\'s source = "prometheus" '
                f'metrics set \\[canary] prometheus_url = "{prom.url}"'
            )
        lines.append("to use it from other AWS tools:")
        lines += [f"  export {k}={v}" for k, v in env.items()]
        return "\n".join(lines)

    obj.out.result(data, render)


@local.command("down")
@json_option
def local_down() -> None:
    """Stop the endpoint (its data is in memory and goes with it), the agent runner and the local
    Prometheus."""
    from orchestrator.local import agents as local_agents
    from orchestrator.local.prometheus import LocalPrometheus

    obj, ep = _endpoint()
    refused: list[RefusedError] = []
    prom_stopped = False
    stopped = False

    def stop_prometheus() -> bool:
        nonlocal prom_stopped
        prom_stopped = LocalPrometheus(obj.settings.state_dir).down()
        return stopped

    stoppers: tuple[Callable[[], bool], ...] = (
        lambda: local_agents.stop_background(obj.settings.state_dir),
        stop_prometheus,
        ep.down,
    )
    for stop in stoppers:
        try:
            stopped = stop()
        except RefusedError as exc:  # stop what is ours even when one record names a stranger
            refused.append(exc)
    if refused:
        raise RefusedError(
            "; ".join(e.message for e in refused), hint="; ".join(e.hint or "" for e in refused)
        )
    obj.out.result(
        {"stopped": stopped, "prometheus_stopped": prom_stopped},
        lambda: (
            ("local endpoint stopped" if stopped else "local endpoint was not running")
            + ("; local Prometheus stopped" if prom_stopped else "")
        ),
    )


@local.command("status")
@json_option
def local_status() -> None:
    """Say whether the endpoint is up (exit 1 when it is not)."""
    from orchestrator.local.prometheus import LocalPrometheus

    obj, ep = _endpoint()
    info = ep.info()
    prom = LocalPrometheus(obj.settings.state_dir).info()
    data = {
        "running": info is not None,
        **(
            {"url": info.url, "pid": info.pid, "log": info.log, "faults": info.faults}
            if info
            else {}
        ),
        "prometheus": None
        if prom is None
        else {
            "url": prom.url,
            "pid": prom.pid,
            "scrape_interval": prom.scrape_interval,
            "targets": prom.targets,
            "log": prom.log,
        },
    }
    obj.out.result(
        data,
        lambda: (
            (
                (
                    f"up at {info.url} (pid {info.pid})"
                    + (f", FAULT INJECTION: {info.faults}" if info.faults else "")
                )
                if info
                else "down"
            )
            + (
                f"\nlocal Prometheus at {prom.url} (pid {prom.pid}, scraping every "
                f"{prom.scrape_interval} the instances in {prom.targets})"
                if prom
                else ""
            )
        ),
    )
    if info is None:
        raise RefusedError(
            "the local endpoint is not running", hint="start it with 'imagefleet local up'"
        )


@local.command("agents", hidden=True)
@click.option("--interval", type=Bounded(float, 0.01, 3600), default=1.0, show_default=True)
@click.option(
    "--ticks",
    type=Bounded(int, 0, 10**9),
    help="Stop after this many rounds (default: run until stopped).",
)
def local_agents_command(interval: float, ticks: int | None) -> None:
    """Run the local agent runner in the foreground (`local up` starts it in the background)."""
    import logging

    from orchestrator.local import agents as local_agents

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    obj = get_context()
    if not local_agents.registered():  # the top layer mounts the areas' agents (``mount``)
        raise UsageError(
            "no local agents are registered", hint="run it as `imagefleet local agents`"
        )
    from orchestrator.local.exporter import Exporter
    from orchestrator.local.prometheus import LocalPrometheus

    # The instances' exposition endpoint, always: `local up --prometheus` may start the server
    # after the runner, and it finds the targets through the file-SD list the runner keeps.
    with Exporter(LocalPrometheus(obj.settings.state_dir).targets_file) as exporter:
        env = local_agents.AgentEnv(
            aws=obj.aws,
            state_dir=obj.settings.state_dir,
            regions=obj.settings.aws.regions,
            clock=obj.clock,
            artifact_bucket=obj.settings.aws.artifact_bucket,
            exporter=exporter,
        )
        logging.getLogger("imagefleet.local_agents").info(
            "instances' metrics at http://%s/metrics (file-SD list %s)",
            exporter.address,
            exporter.targets_file,
        )
        local_agents.run(env, interval=interval, ticks=ticks)


@local.command("inject")
@click.option(
    "--ami", required=True, type=Named(AMI_ID, "AMI"), help="The base to make worse (AMI id)."
)
@click.option(
    "--instance-types",
    "types",
    default="",
    help="Comma-separated globs, e.g. 'r5.*' (default: all).",
)
@click.option("--metric", default="*", show_default=True, help="Metric or benchmark name (glob).")
@click.option(
    "--factor",
    type=Bounded(float, 0.001, 1000),
    help="Multiply the metric by this (1.4 = 40% worse).",
)
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
    inj = injection.add(
        obj.settings.state_dir,
        ami,
        metric,
        factor,
        tuple(t.strip() for t in types.split(",") if t.strip()),
    )
    obj.out.result(
        inj.__dict__,
        lambda: (
            f"injected x{factor} on {metric} for {ami} "
            f"({', '.join(inj.instance_types) or 'all types'}) [id {inj.id}]"
        ),
    )


@local.command("fleet")
@click.option(
    "--family",
    required=True,
    type=Named(FAMILY, "FAMILY"),
    help="Family whose fleet this is (tag imagefleet:family).",
)
@click.option("--ami", required=True, help="The base the fleet runs now.")
@click.option(
    "--per-type",
    type=Bounded(int, 1, 1000),
    default=10,
    show_default=True,
    help="Instances per group.",
)
@click.option(
    "--groups-per-type",
    type=Bounded(int, 1, 100),
    default=1,
    show_default=True,
    help="Auto Scaling groups per instance type (they share the type's template version).",
)
@click.option(
    "--region", type=Named(REGION, "REGION"), help="Region (default: the first configured)."
)
@click.option(
    "--types",
    default="",
    help="Comma-separated instance types (default: the family's cohort types).",
)
@click.option(
    "--account",
    type=Named(ACCOUNT_NAME, "NAME"),
    help="Build it in this member account ([accounts.NAME]), through its role (made if absent).",
)
@json_option
def local_fleet(
    family: str,
    ami: str,
    per_type: int,
    groups_per_type: int,
    region: str | None,
    types: str,
    account: str | None,
) -> None:
    """DEMO: make a launch template and Auto Scaling groups per instance type of FAMILY."""
    from orchestrator.local.fleet import DEFAULT_TYPES, make_fleet, member_role

    obj = get_context()
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    if not chosen:
        try:
            chosen = obj.settings.family(family).cohort_instance_types
        except NotFoundError:
            chosen = DEFAULT_TYPES
    if account is not None:
        obj.settings.select_accounts(
            [account], key="--account"
        )  # an unknown name: exit 2 before any call
        member_role(obj.aws, account)
    data = make_fleet(
        obj.aws,
        family,
        ami,
        chosen,
        per_type,
        region or obj.settings.aws.regions[0],
        groups_per_type,
        account=account,
    )
    where = f"{data['region']}" + (f", account {account}" if account else "")
    obj.out.result(
        data,
        lambda: (
            f"fleet of {family} in {where}: "
            + ", ".join(
                f"{g['name']} ({g['desired']} × {g['instance_type']})" for g in data["groups"]
            )
        ),
    )


local.add_command(publish_command)  # its own module: the vendor's side of source_parameter
