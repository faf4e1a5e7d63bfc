"""``imagefleet-agent bench``: run the benchmarks on this instance and write samples (JSON lines).

Exit codes: 0 ok, 2 usage error, 3 a benchmark, write or upload failed (one-line reason on stderr).
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any
from urllib.parse import urlparse

import click

from perf.agent.benchmarks import BUILTIN, EXTERNAL, BenchRun, apply_slowdown, run_benchmarks
from perf.agent.simulated import simulate
from perf.record import Sample, write_records

EXIT_FAILURE = 3


@click.group("imagefleet-agent")
def cli() -> None:
    """imagefleet's on-instance agent."""


@cli.command("bench")
@click.option("--instance-id", required=True)
@click.option("--instance-type", required=True)
@click.option("--ami", required=True)
@click.option("--arm", type=click.Choice(["baseline", "candidate"]), required=True)
@click.option("--repetitions", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(0.01, 600),
    default=0.15,
    show_default=True,
    help="Seconds per benchmark per repetition.",
)
@click.option(
    "--benchmark",
    "names",
    multiple=True,
    type=click.Choice(sorted([*BUILTIN, *EXTERNAL])),
    help="Run only these (repeatable). Default: all built-ins plus installed tools.",
)
@click.option("--no-external", is_flag=True, help="Skip fio / sysbench / stress-ng.")
@click.option("--output", default="-", show_default=True, help="File path, or - for stdout.")
@click.option("--s3-uri", default=None, help="Also upload the samples to s3://bucket/key.")
@click.option(
    "--slowdown",
    type=float,
    default=None,
    help="FAULT INJECTION for the local agent runner (demos/tests): slow every result "
    "by FACTOR and label it metadata.fault_injected.",
)
@click.option(
    "--simulate",
    "simulate_key",
    default=None,
    metavar="KEY",
    help="SIMULATION for the local agent runner: draw results from a model of the "
    "instance seeded by KEY instead of timing this machine (metadata.simulated).",
)
def bench(
    instance_id: str,
    instance_type: str,
    ami: str,
    arm: str,
    repetitions: int,
    duration: float,
    names: tuple[str, ...],
    no_external: bool,
    output: str,
    s3_uri: str | None,
    slowdown: float | None,
    simulate_key: str | None,
) -> None:
    """Run the benchmarks and write samples as JSON lines."""
    if slowdown is not None and not slowdown > 0:
        raise click.BadParameter("must be > 0", param_hint="--slowdown")
    bucket_key = _parse_s3_uri(s3_uri) if s3_uri else None
    try:
        if simulate_key is not None:
            run = BenchRun(
                simulate(
                    simulate_key,
                    instance_type,
                    repetitions=repetitions,
                    names=[n for n in names if n in BUILTIN] or None,
                    arm=arm,
                )
            )
        else:
            run = run_benchmarks(
                repetitions=repetitions,
                duration=duration,
                names=list(names) or None,
                external=not no_external,
            )
    except Exception as exc:  # any benchmark failure is exit 3 with one line
        _fail(
            f"benchmark failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
    for name, reason in sorted(run.skipped.items()):
        click.echo(f"imagefleet-agent: skipped {name}: {reason}", err=True)
    raw = apply_slowdown(run.samples, slowdown) if slowdown is not None else run.samples
    now = time.time()
    samples = [
        Sample.from_dict(
            s
            | {
                "instance_id": instance_id,
                "instance_type": instance_type,
                "ami": ami,
                "arm": arm,
                "timestamp": now,
            }
        )
        for s in raw
    ]
    buf = io.StringIO()
    write_records(samples, buf)
    text = buf.getvalue()
    try:
        if output == "-":
            click.echo(text, nl=False)
        else:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc}")
    if bucket_key:
        _upload(*bucket_key, text.encode("utf-8"))


def _parse_s3_uri(uri: str) -> tuple[str, str]:
    u = urlparse(uri)
    if u.scheme != "s3" or not u.netloc or not u.path.strip("/"):
        raise click.BadParameter(f"{uri!r} is not s3://bucket/key", param_hint="--s3-uri")
    return u.netloc, u.path.lstrip("/")


def _s3_client() -> Any:
    from orchestrator.aws import AwsFactory  # boto3 loads only when there is something to upload

    return AwsFactory(endpoint_url=os.environ.get("AWS_ENDPOINT_URL")).client("s3")


def _upload(bucket: str, key: str, body: bytes) -> None:
    try:
        _s3_client().put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson"
        )
    except Exception as exc:  # any upload failure is exit 3 with one line
        _fail(f"upload to s3://{bucket}/{key} failed: {str(exc).splitlines()[0][:200]}")


def _fail(message: str) -> None:
    click.echo(f"imagefleet-agent: {message}", err=True)
    sys.exit(EXIT_FAILURE)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="imagefleet-agent")


if __name__ == "__main__":
    main()
