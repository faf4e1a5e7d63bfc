"""`imagefleet local up | status | down` on its own state directory (a second server)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest

from orchestrator.cli import raw_main
from orchestrator.context import Context
from orchestrator.local import LocalEndpoint, answers
from orchestrator.output import Output

pytestmark = pytest.mark.integration


def run(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(["--config", str(config), *args], obj=Context(output=Output(stdout=out, stderr=err)))
    return code, out.getvalue(), err.getvalue()


def test_up_status_down(tmp_path: Path) -> None:
    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    config = tmp_path / "imagefleet.toml"
    code, out, _ = run(config, "local", "status", "--json")
    assert code == 1 and json.loads(out) == {"running": False}
    try:
        code, out, err = run(config, "local", "up", "--json")
        assert code == 0, err
        up = json.loads(out)
        assert up["started"] is True and answers(up["url"])
        assert up["env"]["AWS_ENDPOINT_URL"] == up["url"]
        s3 = boto3.client("s3", endpoint_url=up["url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        assert "imagefleet-artifacts" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        code, out, _ = run(config, "local", "up", "--json")
        assert code == 0 and json.loads(out)["started"] is False and json.loads(out)["pid"] == up["pid"]
        code, out, _ = run(config, "local", "status", "--json")
        assert code == 0 and json.loads(out)["url"] == up["url"]
    finally:
        code, out, _ = run(config, "local", "down", "--json")
    assert code == 0 and json.loads(out) == {"stopped": True}
    assert not answers(up["url"])
    assert LocalEndpoint(tmp_path / ".imagefleet").info() is None


def test_commands_need_the_endpoint_when_configured_local(tmp_path: Path) -> None:
    raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO())))
    code, _, err = run(tmp_path / "imagefleet.toml", "bake", "demo")
    assert code == 3 and "the local endpoint is not running" in err and "imagefleet local up" in err
