"""`imagefleet local up | status | down` on its own state directory (a second server)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest

from imagefleet.cli import raw_main
from orchestrator.context import Context
from orchestrator.local.endpoint import LocalEndpoint, answers
from orchestrator.output import Output

pytestmark = pytest.mark.integration


def run(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = raw_main(
        ["--config", str(config), *args], obj=Context(output=Output(stdout=out, stderr=err))
    )
    return code, out.getvalue(), err.getvalue()


def test_up_status_down(tmp_path: Path) -> None:
    assert raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO()))) == 0
    config = tmp_path / "imagefleet.toml"
    code, out, _ = run(config, "local", "status", "--json")
    assert code == 1 and json.loads(out) == {"running": False, "prometheus": None}
    try:
        code, out, err = run(config, "local", "up", "--json")
        assert code == 0, err
        up = json.loads(out)
        assert up["started"] is True and answers(up["url"])
        assert up["env"]["AWS_ENDPOINT_URL"] == up["url"]
        s3 = boto3.client(
            "s3",
            endpoint_url=up["url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert "imagefleet-artifacts" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        code, out, _ = run(config, "local", "up", "--json")
        assert (
            code == 0
            and json.loads(out)["started"] is False
            and json.loads(out)["pid"] == up["pid"]
        )
        code, out, _ = run(config, "local", "status", "--json")
        assert code == 0 and json.loads(out)["url"] == up["url"]
    finally:
        code, out, _ = run(config, "local", "down", "--json")
    assert code == 0 and json.loads(out) == {"stopped": True, "prometheus_stopped": False}
    assert not answers(up["url"])
    assert LocalEndpoint(tmp_path / ".imagefleet").info() is None


def test_commands_need_the_endpoint_when_configured_local(tmp_path: Path) -> None:
    raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO())))
    code, _, err = run(tmp_path / "imagefleet.toml", "bake", "demo")
    assert code == 3 and "the local endpoint is not running" in err and "imagefleet local up" in err


def test_a_restart_is_noticed_and_its_lost_bases_named_then_forgotten(tmp_path: Path) -> None:
    from orchestrator.local.memory import forgotten
    from orchestrator.store import BaseVersion, SqliteStore, utcnow

    raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO())))
    config = tmp_path / "imagefleet.toml"
    try:
        code, out, err = run(config, "local", "up", "--json")
        assert code == 0 and json.loads(out)["restarted"] is False, err
        ec2 = boto3.client(
            "ec2",
            endpoint_url=json.loads(out)["url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stock = ec2.describe_images()["Images"][0][
            "ImageId"
        ]  # moto's stock images survive a restart
        store = SqliteStore(tmp_path / ".imagefleet" / "state.db")
        store.put_base(BaseVersion("demo", 1, {"us-east-1": stock}, stock, None, "t", utcnow()))
        iid = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        baked = ec2.create_image(InstanceId=iid, Name="demo-2")["ImageId"]
        store.put_base(BaseVersion("demo", 2, {"us-east-1": baked}, stock, 1, "t", utcnow()))
        assert run(config, "local", "down")[0] == 0

        code, out, err = run(config, "local", "up", "--json")
        up = json.loads(out)
        assert code == 0 and up["restarted"] is True and up["lost"] == ["demo:2"]
        assert "demo:2" in err and "--forget-lost" in err
        code, out, err = run(config, "local", "up", "--forget-lost", "--json")
        assert code == 0 and json.loads(out)["lost"] == ["demo:2"], err
        assert forgotten(store) == {"demo:2"}
    finally:
        run(config, "local", "down")


def test_up_with_the_team_backend_makes_the_state_table_on_the_endpoint(tmp_path: Path) -> None:
    """`[state] backend = "dynamodb"` with `endpoint_url = "local"`: two commands to a working team
    set-up."""
    raw_main(["init", str(tmp_path)], obj=Context(output=Output(stdout=io.StringIO())))
    config = tmp_path / "imagefleet.toml"
    text = config.read_text()
    assert 'backend = "sqlite"' in text
    config.write_text(
        text.replace('backend = "sqlite"', 'backend = "dynamodb"\ntable = "team-state"', 1)
    )
    try:
        code, out, err = run(config, "local", "up", "--json")
        assert code == 0, err
        up = json.loads(out)
        assert up["state_table"] == {"name": "team-state", "created": True}
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=up["url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert ddb.describe_table(TableName="team-state")["Table"]["TableStatus"] == "ACTIVE"
        assert (
            ddb.describe_time_to_live(TableName="team-state")["TimeToLiveDescription"][
                "AttributeName"
            ]
            == "ttl"
        )
        # the store is the table: the endpoint's identity went there, and `leases` reads it
        assert ddb.scan(TableName="team-state")["Count"] >= 1
        code, out, err = run(config, "leases", "--json")
        assert code == 0 and json.loads(out) == [], err
        code, out, err = run(config, "local", "up")
        assert code == 0 and "already running" in out, err
    finally:
        run(config, "local", "down")
    assert not (tmp_path / ".imagefleet" / "state.db").exists()  # nothing went to SQLite
