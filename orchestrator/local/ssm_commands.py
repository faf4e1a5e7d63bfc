"""SSM Run Command on the embedded endpoint: invocations wait for an agent, as on AWS.

moto 5 answers ``SendCommand`` with a command whose every invocation is already ``Success`` (exit
0, no output, "5 minutes" elapsed), whatever the command and even for instances that do not exist.
On AWS the SSM agent on the instance picks the command up, runs it and reports its exit code and
output; until then the invocation is ``InProgress``. This module, installed in the endpoint's
server process only (``moto_server``), makes moto do the same:

- a command runs on the instances it names (moto's, sent to one instance id without ``Targets``,
  gets an invocation on every instance of the region);
- ``SendCommand`` refuses instance ids that are not running on the endpoint (``InvalidInstanceId``,
  as AWS does for an instance whose agent is not online), and every invocation it creates is
  ``InProgress`` with no output; the command's status follows its invocations;
- the local agent runner's SSM agent (``orchestrator.local.ssm_agent``), which plays the instance's
  agent, reports a finished invocation with ``POST /_imagefleet/ssm/reply`` (JSON: region,
  command id, instance id, status, response code, stdout, stderr); that is the endpoint's own
  stand-in for the agent's channel to AWS (``ec2messages:SendReply``), not an AWS API.

After that, ``GetCommandInvocation`` and ``ListCommands`` answer with what the agent reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ssm import models as ssm_models
from moto.ssm.exceptions import SSMException

REPLY_PATH = "/_imagefleet/ssm/reply"
FINAL = {"Success", "Failed", "TimedOut", "Cancelled"}
_DETAILS = {"TimedOut": "ExecutionTimedOut"}
OUTPUT_LIMIT = 24000  # what GetCommandInvocation returns of each stream at most (as on AWS)


class InvalidInstanceId(SSMException):
    def __init__(self, instance_id: str) -> None:
        super().__init__(
            "InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state for account"
        )


def _in_progress(self: Any, instance_id: str, plugin_name: str) -> dict[str, Any]:
    return {
        "CommandId": self.command_id,
        "InstanceId": instance_id,
        "Comment": self.comment,
        "DocumentName": self.document_name,
        "PluginName": plugin_name,
        "ResponseCode": -1,
        "ExecutionStartDateTime": "",
        "ExecutionElapsedTime": "",
        "ExecutionEndDateTime": "",
        "Status": "InProgress",
        "StatusDetails": "InProgress",
        "StandardOutputContent": "",
        "StandardOutputUrl": "",
        "StandardErrorContent": "",
    }


def _command_status(self: Any) -> dict[str, Any]:
    """The command as moto answers it, with its status from its invocations."""
    statuses = [inv["Status"] for inv in self.invocations]
    done = [s for s in statuses if s in FINAL]
    failed = [s for s in done if s != "Success"]
    self.completed_count = len(done)
    self.error_count = len(failed)
    if len(done) < len(statuses):
        self.status = self.status_details = "InProgress"
    elif failed:
        self.status = "Failed" if "Failed" in failed else failed[0]
        self.status_details = self.status
    else:
        self.status = self.status_details = "Success"
    return _ORIGINAL_RESPONSE(self)


_ORIGINAL_RESPONSE: Callable[[Any], dict[str, Any]] = ssm_models.Command.response_object
_ORIGINAL_SEND: Callable[..., Any] = ssm_models.SimpleSystemManagerBackend.send_command


def _send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
    ids = kwargs.get("instance_ids") or []  # moto's response handler passes keywords
    ec2 = ec2_backends[self.account_id][self.region_name]
    for instance_id in ids:
        try:
            running = ec2.get_instance(instance_id).is_running()
        except Exception:
            running = False
        if not running:
            raise InvalidInstanceId(instance_id)
    return _ORIGINAL_SEND(self, *args, **kwargs)


_ORIGINAL_TARGETS: Callable[[Any], list[str]] = ssm_models.Command._get_instance_ids_from_targets


def _targeted(self: Any) -> list[str]:
    """Instances named by ``Targets``; none when there are none (moto's own filter, given no
    targets, matches every instance of the region)."""
    return _ORIGINAL_TARGETS(self) if self.targets else []


def reply(body: dict[str, Any]) -> bool:
    """Record an agent's result of one invocation; False when no such invocation waits."""
    status = str(body["status"])
    if status not in FINAL:
        raise ValueError(f"not a final status: {status}")
    for account in list(ssm_models.ssm_backends.keys()):
        backend = ssm_models.ssm_backends[account][str(body["region"])]
        for command in backend._commands:
            if command.command_id != body["command_id"]:
                continue
            for inv in command.invocations:
                if inv["InstanceId"] == body["instance_id"] and inv["Status"] not in FINAL:
                    inv.update(
                        Status=status,
                        StatusDetails=_DETAILS.get(status, status),
                        ResponseCode=int(body.get("response_code", -1)),
                        ExecutionStartDateTime=str(body.get("started", "")),
                        ExecutionEndDateTime=datetime.now().isoformat(),
                        StandardOutputContent=str(body.get("stdout", ""))[:OUTPUT_LIMIT],
                        StandardErrorContent=str(body.get("stderr", ""))[:OUTPUT_LIMIT],
                    )
                    return True
    return False


class AgentReplies:
    """WSGI middleware: ``POST /_imagefleet/ssm/reply`` records an agent's result; every other
    request goes to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != REPLY_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            found = reply(json.loads(environ["wsgi.input"].read(size)))
            code = "200 OK" if found else "404 Not Found"
        except (ValueError, KeyError, TypeError):
            code = "400 Bad Request"
        start_response(code, [("Content-Type", "text/plain")])
        return [code.encode()]


def install() -> None:
    """Patch moto's SSM commands in this process (idempotent)."""
    ssm_models.Command.invocation_response = _in_progress  # type: ignore[method-assign]
    ssm_models.Command.response_object = _command_status  # type: ignore[method-assign]
    ssm_models.SimpleSystemManagerBackend.send_command = _send_command  # type: ignore[method-assign]
    ssm_models.Command._get_instance_ids_from_targets = _targeted  # type: ignore[method-assign]
