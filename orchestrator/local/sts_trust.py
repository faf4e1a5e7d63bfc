"""The embedded endpoint's STS AssumeRole refuses what AWS refuses: a role that does not exist in
the member account, or an external id its trust policy does not name.

moto's AssumeRole hands out credentials for any role ARN, so on the endpoint every member account
would look assumable. This WSGI middleware (in the server process, beside moto's backends) checks
the request first, as STS does: the role must exist in the account its ARN names (``imagefleet
local fleet --account NAME`` creates it there, as StackSets or Terraform do on AWS; docs/aws.md),
and when its trust policy has an ``sts:ExternalId`` condition the request must carry that id. It
answers ``AccessDenied`` in STS's own XML otherwise. The principal in the trust policy is not
checked (the endpoint has one caller).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

_DENIED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>
<RequestId>imagefleet-local</RequestId></ErrorResponse>"""


def external_ids(trust_policy: str) -> set[str] | None:
    """The external ids a trust policy's ``sts:ExternalId`` conditions accept; None when it has
    none (any request may then assume the role)."""
    try:
        doc = json.loads(trust_policy)
    except (TypeError, ValueError):
        return None
    statements = doc.get("Statement", []) if isinstance(doc, dict) else []
    found: set[str] = set()
    seen = False
    for st in statements if isinstance(statements, list) else [statements]:
        for test in (st.get("Condition") or {}).values() if isinstance(st, dict) else ():
            value = test.get("sts:ExternalId") if isinstance(test, dict) else None
            if value is not None:
                seen = True
                found.update([value] if isinstance(value, str) else value)
    return found if seen else None


def refusal(role_arn: str, external_id: str | None) -> str | None:
    """Why STS would refuse AssumeRole of ``role_arn`` (None: it would not), from moto's IAM."""
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        return f"{role_arn} is not a role ARN"
    try:
        role = iam_backends[parts[4]][parts[1]].get_role_by_arn(role_arn)
    except Exception:  # moto's NotFoundException, or an unknown partition
        return f"not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    wanted = external_ids(role.assume_role_policy_document)
    if wanted is not None and external_id not in wanted:
        return (
            f"not authorized to perform: sts:AssumeRole on resource: {role_arn} "
            "(the trust policy's sts:ExternalId does not match)"
        )
    return None


class AssumeRoleAsAwsDoes:
    """WSGI middleware: STS AssumeRole requests pass only when ``refusal`` finds nothing."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if environ.get("REQUEST_METHOD") != "POST" or "/sts/aws4_request" not in auth:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action") != ["AssumeRole"]:
            return self.app(environ, start_response)
        why = refusal(form.get("RoleArn", [""])[0], form.get("ExternalId", [None])[0])
        if why is None:
            return self.app(environ, start_response)
        text = _DENIED.format(message=why.replace("&", "&amp;").replace("<", "&lt;")).encode()
        start_response(
            "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(text)))]
        )
        return [text]
