"""The embedded endpoint's server process: moto's server, with DynamoDB requests applied one at a
time.

moto serves each request on its own thread, and its DynamoDB backend checks a condition and
then writes without a lock; a cancelled transaction even restores a copy of the table taken
when it began, undoing what other requests wrote meanwhile. DynamoDB itself applies each
conditional write and transaction atomically, and the state store's leases, reservations and
pointer moves rely on that, so this server lets one DynamoDB request in at a time, and applies a
transaction without copying the whole table for each of its items (``dynamodb_transactions``).
SSM Run Command invocations stay ``InProgress`` until the local SSM agent reports them
(``ssm_commands``). SSM public parameters (``/aws/service/...``) are written by the endpoint's
stand-in for their publisher and read in every account (``public_parameters``); a copied image
keeps its source's root device (``image_copies``). STS AssumeRole
is checked first as STS checks it (``sts_trust``: the role must exist in its account and its
trust policy's external id match). Every other service is served as moto serves it.
Started by ``LocalEndpoint.up`` as
``python -m orchestrator.local.moto_server -H HOST -p PORT``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

from orchestrator.local import (
    dynamodb_transactions,
    image_copies,
    public_parameters,
    ssm_commands,
)
from orchestrator.local.sts_trust import AssumeRoleAsAwsDoes

DYNAMODB_TARGET = (
    "DynamoDB_"  # X-Amz-Target of every DynamoDB API call: "DynamoDB_20120810.PutItem"
)


class OneDynamoDBRequestAtATime:
    """WSGI middleware: DynamoDB requests run under one lock (body read and response built inside
    it)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault(
        "MOTO_PORT", str(args.port)
    )  # as moto's own server does: URLs it hands out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    dynamodb_transactions.install()
    ssm_commands.install()
    public_parameters.install()
    image_copies.install()
    app = public_parameters.PublicParameters(
        ssm_commands.AgentReplies(DomainDispatcherApplication(create_backend_app))
    )
    run_simple(
        args.host,
        args.port,
        AssumeRoleAsAwsDoes(OneDynamoDBRequestAtATime(app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
