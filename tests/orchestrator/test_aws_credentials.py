"""Missing, expired and rejected credentials, and unknown regions: one line with the fix, exit 3.

Expired and rejected credentials are answered over HTTP by a small server that replies the way STS
and EC2 do (their documented error documents), so boto3 runs unpatched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.exceptions as bex
import pytest

from orchestrator.aws import LOCAL_CREDENTIALS, AwsFactory, credential_error
from orchestrator.errors import AwsError, ExitStatus

# STS's query-protocol error document
# (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html)
STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
)


@pytest.fixture
def sts_answering() -> Iterator[tuple[list[tuple[str, str]], str]]:
    """An endpoint that answers every request with the next queued (code, message) as a 403."""
    queue: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            code, message = queue.pop(0)
            body = STS_ERROR.format(code=code, message=message).encode()
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield queue, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_expired_and_rejected_tokens_name_the_fix(
    sts_answering: tuple[list[tuple[str, str]], str],
) -> None:
    queue, url = sts_answering
    aws = AwsFactory(endpoint_url=url, credentials=dict(LOCAL_CREDENTIALS), max_attempts=1)
    queue.append(("ExpiredToken", "The security token included in the request is expired"))
    with pytest.raises(AwsError) as expired:
        aws.client("sts").get_caller_identity()
    assert "expired" in expired.value.message and "aws sso login" in (expired.value.hint or "")
    queue.append(("InvalidClientTokenId", "The security token included in the request is invalid."))
    with pytest.raises(AwsError) as rejected:
        aws.client("sts", "ap-east-1").get_caller_identity()
    assert "did not accept" in rejected.value.message and "ap-east-1" in (rejected.value.hint or "")
    assert rejected.value.exit_code == ExitStatus.FAILURE


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with no AWS credentials anywhere (no files, no variables, no instance
    metadata)."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credentials")
def test_resolve_without_credentials_is_one_line_with_the_fix(workspace: object) -> None:
    ws = workspace
    ws.edit(r"^endpoint_url = .*$", "")  # real AWS, as a new user's first try would be
    r = ws.run("resolve", ws.family, "--stage", "candidate")
    assert r.code == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: no usable AWS credentials") and "unexpected" not in r.stderr
    assert lines[1].startswith("hint:") and "imagefleet local up" in lines[1]


@pytest.mark.usefixtures("no_credentials")
def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(AwsError) as exc:
        AwsFactory(profile="nope").client("sts")
    assert "nope" in exc.value.message and "list-profiles" in (exc.value.hint or "")


def test_an_unreachable_aws_region_is_named_but_not_the_local_endpoint() -> None:
    exc = bex.EndpointConnectionError(endpoint_url="https://ec2.us-east-9.amazonaws.com/")
    mapped = credential_error(exc, "us-east-9", None)
    assert mapped is not None and "us-east-9" in mapped.message
    assert credential_error(exc, "us-east-9", "http://127.0.0.1:5000") is None
    assert credential_error(ValueError("x"), "us-east-1", None) is None
