"""SSM public parameters on the embedded endpoint: ``/aws/service/...``, as their publisher writes
them.

On AWS, Canonical, Amazon and others publish the current AMI of each image line as a public
parameter (Canonical's ``/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/
ebs-gp3/ami-id``) that every account reads with ``GetParameter`` but none may write: moto refuses
``PutParameter`` under ``/aws/`` as SSM does. This module, installed in the endpoint's server
process only (``moto_server``), plays the publisher:

- ``POST /_imagefleet/ssm/public-parameter`` (JSON: region, name, value) writes a new version of
  the parameter into the publisher's own store (the endpoint's stand-in for the vendor's release
  process, not an AWS API); writing the value it already holds adds no version;
- every account's ``GetParameter`` of a name under ``/aws/service/`` then answers with the
  publisher's versions, as a public parameter answers in every account. moto's own public
  parameters (Amazon Linux's) are served as moto serves them.

Everything lives in moto's backends, so ``moto-api/reset`` and ``local down`` forget it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.utils import utcnow
from moto.ssm import models as ssm_models

PATH = "/_imagefleet/ssm/public-parameter"
PREFIX = "/aws/service/"
PUBLISHER = "000000000000"  # the account whose store holds the published versions
_NAME = re.compile(r"/aws/service(/[A-Za-z0-9._-]{1,200}){1,10}", re.ASCII)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]", re.ASCII)


def _published(region: str, name: str) -> list[Any]:
    """The publisher's versions of ``name`` (oldest first), without creating an entry."""
    store: dict[str, list[Any]] = ssm_models.ssm_backends[PUBLISHER][region]._parameters
    found: list[Any] | None = dict.get(store, name)  # dict's get: the defaultdict adds no entry
    return list(found or [])


def publish(region: str, name: str, value: str) -> int:
    """Write ``value`` as the parameter's newest version; its version number."""
    if not _NAME.fullmatch(name) or not _REGION.fullmatch(region) or not value:
        raise ValueError(f"not a public parameter: {region} {name} {value!r}")
    versions = _published(region, name)
    if versions and versions[-1].value == value:
        return int(versions[-1].version)
    param = ssm_models.Parameter(  # type: ignore[abstract]  # as moto makes its own
        account_id=PUBLISHER,
        name=name,
        value=value,
        parameter_type="String",
        description=None,
        allowed_pattern=None,
        keyid=None,
        last_modified_date=utcnow(),
        version=len(versions) + 1,
        data_type="aws:ec2:image" if value.startswith("ami-") else "text",
    )
    store = ssm_models.ssm_backends[PUBLISHER][region]._parameters
    dict.__setitem__(store, name, [*versions, param])
    return len(versions) + 1


_ORIGINAL_LOADING: Callable[[Any, str], None] = ssm_models.ParameterDict._check_loading_status


def _check_loading_status(self: Any, key: str) -> None:
    """moto's lazy loading of its own public parameters, then the publisher's versions of
    ``key``."""
    _ORIGINAL_LOADING(self, key)
    key = str(key or "")
    if not key.startswith(PREFIX) or self.account_id == PUBLISHER:
        return
    versions = _published(self.region_name, key)
    if versions:
        dict.__setitem__(self, key, versions)


class PublicParameters:
    """WSGI middleware: ``POST /_imagefleet/ssm/public-parameter`` publishes; the rest goes to
    moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(size))
            version = publish(str(body["region"]), str(body["name"]), str(body["value"]))
            code, answer = "200 OK", json.dumps({"version": version})
        except (ValueError, KeyError, TypeError) as exc:
            code, answer = "400 Bad Request", json.dumps({"error": str(exc)})
        start_response(code, [("Content-Type", "application/json")])
        return [answer.encode()]


def install() -> None:
    """Patch moto's parameter lookup in this process (idempotent)."""
    ssm_models.ParameterDict._check_loading_status = _check_loading_status  # type: ignore[method-assign]
