"""FAULT INJECTION (local endpoint only): AWS's eventual consistency, played by the fault proxy.

EC2 documents that a resource just created may be missing from describes for a while
(``InvalidAMIID.NotFound``, ``InvalidInstanceID.NotFound``) and that a changed attribute may read
its old value. moto is strongly consistent, so with ``consistency=5s`` in its spec the fault
proxy keeps a ``Consistency`` model: for that long after each create or change it

* answers a describe or get that names a **new** resource by id with the service's NotFound
  error, and leaves it out of listings (filters, no ids);
* answers reads of a **changed** resource (tags, launch permissions, an SSM parameter's value)
  with the value it had before the change.

Pure apart from the clock it is given: the proxy hands it each request (``Call``) and answer
(bytes) and forwards the prior reads it asks for (``prior``), so it is tested without a network.
Creates: RunInstances, CreateImage, RegisterImage, CopyImage, CreateLaunchTemplateVersion,
PutParameter of a new name. Changes: CreateTags, ModifyImageAttribute, PutParameter over a value.
Tagging or sharing an AMI or instance not visible yet, or launching from such an AMI, is refused
with the same NotFound, as EC2 may; other writes are forwarded. See docs/faults.md.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

EC2_VERSION = "2016-11-15"
_CREATES = {
    "RunInstances": "instance",
    "CreateImage": "image",
    "RegisterImage": "image",
    "CopyImage": "image",
    "CreateLaunchTemplateVersion": "lt-version",
}


@dataclass(frozen=True)
class Call:
    """One AWS request as the model sees it: service, action, region and its parameters."""

    service: str  # "ec2" or "ssm" (nothing else is modelled)
    action: str
    region: str
    params: dict[str, list[str]] = field(default_factory=dict)  # EC2: query parameters
    body: dict[str, Any] = field(default_factory=dict)  # SSM: the JSON request

    def listed(self, prefix: str) -> list[str]:
        """``ImageId.1``, ``ImageId.2``… in order."""
        pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)$")
        found = sorted(
            (int(m.group(1)), v[0]) for k, v in self.params.items() if (m := pattern.match(k))
        )
        return [v for _, v in found]

    def one(self, name: str) -> str:
        return self.params.get(name, [""])[0]

    def tag_filters(self) -> list[tuple[str, list[str]]]:
        """``(filter name, values)`` of the request's ``tag:K`` and ``tag-key`` filters."""
        out = []
        for n in range(1, 51):
            name = self.one(f"Filter.{n}.Name")
            if not name:
                break
            if name.startswith("tag:") or name == "tag-key":
                out.append((name, self.listed(f"Filter.{n}.Value")))
        return out


def call_of(service: str, region: str, target: str, body: bytes) -> Call | None:
    """The ``Call`` of an EC2 query or SSM JSON request; None for anything the model ignores."""
    if service == "ec2":
        params = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        action = params.pop("Action", [""])[0]
        return Call("ec2", action, region, params=params) if action else None
    if service == "ssm" and target.startswith("AmazonSSM."):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return None
        return Call(
            "ssm", target.split(".", 1)[1], region, body=doc if isinstance(doc, dict) else {}
        )
    return None


@dataclass(frozen=True)
class Prior:
    """A read the proxy makes upstream before forwarding a change, to learn the old value."""

    target: str  # X-Amz-Target for SSM; "" for EC2 query
    body: bytes


@dataclass(frozen=True)
class Refusal:
    """An answer made by the model instead of forwarding: a NotFound, or an old value."""

    status: int
    code: str = ""  # an error's code (empty for an old value)
    message: str = ""
    body: bytes = b""  # an old value's answer as it was


def _ec2_form(action: str, params: dict[str, str]) -> bytes:
    return urlencode({"Action": action, "Version": EC2_VERSION, **params}).encode()


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in elem if _strip(c.tag) == name), None)


def _text(elem: ET.Element, name: str) -> str:
    c = _child(elem, name)
    return (c.text or "") if c is not None else ""


def _items(elem: ET.Element | None) -> list[ET.Element]:
    return [] if elem is None else [c for c in elem if _strip(c.tag) == "item"]


def _tags_of(elem: ET.Element) -> dict[str, str]:
    return {_text(i, "key"): _text(i, "value") for i in _items(_child(elem, "tagSet"))}


def _matches(tags: dict[str, str], filters: list[tuple[str, list[str]]]) -> bool:
    for name, values in filters:
        if name == "tag-key":
            if not any(fnmatch.fnmatchcase(k, v) for k in tags for v in values):
                return False
        elif not any(fnmatch.fnmatchcase(tags.get(name[4:], "\0"), v) for v in values):
            return False
    return True


class Consistency:
    """What was created or changed, and until when reads of it are stale; thread-safe."""

    def __init__(self, window_s: float, now: Callable[[], float]) -> None:
        self.window_s = window_s
        self.now = now
        self._lock = threading.Lock()
        self._new: dict[tuple[str, str], float] = {}  # (region, id) → until
        self._old: dict[
            tuple[str, str, str], tuple[float, Any]
        ] = {}  # (region, what, id) → (until, old value)
        self.counts: Counter[str] = Counter()

    # --- bookkeeping
    # -------------------------------------------------------------------------------
    def hidden(self, region: str, ident: str) -> bool:
        with self._lock:
            return self._new.get((region, ident), -1.0) > self.now()

    def _stale(self, region: str, what: str, ident: str) -> Any | None:
        with self._lock:
            until, old = self._old.get((region, what, ident), (-1.0, None))
            return old if until > self.now() else None

    def _hide(self, region: str, ident: str) -> None:
        with self._lock:
            self._new[(region, ident)] = self.now() + self.window_s
            self.counts["created"] += 1

    def _remember(self, region: str, what: str, ident: str, old: Any) -> None:
        with self._lock:
            until, first = self._old.get((region, what, ident), (-1.0, None))
            # a second change inside the window: a read may still show the value before the first
            keep = first if until > self.now() else old
            self._old[(region, what, ident)] = (self.now() + self.window_s, keep)
            self.counts["changed"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                k: self.counts.get(k, 0)
                for k in ("created", "changed", "not_found", "left_out", "old_value")
            }

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    # --- before forwarding
    # ---------------------------------------------------------------------------
    def prior(self, call: Call) -> Prior | None:
        """The read that learns the old value a change is about to replace."""
        if call.service == "ec2" and call.action == "CreateTags":
            ids = call.listed("ResourceId")
            return Prior(
                "",
                _ec2_form(
                    "DescribeTags",
                    {
                        "Filter.1.Name": "resource-id",
                        **{f"Filter.1.Value.{n}": i for n, i in enumerate(ids, 1)},
                    },
                ),
            )
        if call.service == "ec2" and call.action == "ModifyImageAttribute":
            return Prior(
                "",
                _ec2_form(
                    "DescribeImageAttribute",
                    {"ImageId": call.one("ImageId"), "Attribute": "launchPermission"},
                ),
            )
        if call.service == "ssm" and call.action == "PutParameter" and call.body.get("Name"):
            return Prior("AmazonSSM.GetParameter", json.dumps({"Name": call.body["Name"]}).encode())
        return None

    def refuse(self, call: Call) -> Refusal | None:
        """A NotFound or an old value to answer instead of forwarding, or None to forward."""
        region = call.region
        if call.service == "ec2":
            missing = [i for i in self._named(call) if self.hidden(region, i)]
            if missing:
                self._count("not_found")
                if missing[0].startswith("ami-"):
                    return Refusal(
                        400,
                        "InvalidAMIID.NotFound",
                        f"The image id '[{', '.join(missing)}]' does not exist",
                    )
                return Refusal(
                    400,
                    "InvalidInstanceID.NotFound",
                    f"The instance ID '{', '.join(missing)}' does not exist",
                )
            if call.action == "DescribeLaunchTemplateVersions":
                lt = call.one("LaunchTemplateId")
                gone = [
                    v
                    for v in call.listed("LaunchTemplateVersion")
                    if self.hidden(region, f"{lt}:{v}")
                ]
                if gone:
                    self._count("not_found")
                    return Refusal(
                        400,
                        "InvalidLaunchTemplateId.VersionNotFound",
                        f"Could not find launch template version {gone[0]} for launch template "
                        f"{lt}",
                    )
            if (
                call.action == "DescribeImageAttribute"
                and call.one("Attribute") == "launchPermission"
            ):
                old = self._stale(region, "launch-permission", call.one("ImageId"))
                if old is not None:
                    self._count("old_value")
                    return Refusal(200, body=old)
        elif call.service == "ssm" and call.action == "GetParameter":
            name = str(call.body.get("Name", ""))
            if self.hidden(region, f"ssm:{name}"):
                self._count("not_found")
                return Refusal(400, "ParameterNotFound", f"Parameter {name} not found.")
            old = self._stale(region, "parameter", name)
            if old is not None:
                self._count("old_value")
                return Refusal(200, body=json.dumps({"Parameter": old}).encode())
        return None

    @staticmethod
    def _named(call: Call) -> list[str]:
        """The AMIs and instances a request names by id: reads, and the writes AWS refuses for a
        resource it does not know yet (tagging, sharing, launching from a fresh AMI)."""
        if call.action == "DescribeImages":
            return call.listed("ImageId")
        if call.action == "DescribeInstances":
            return call.listed("InstanceId")
        if call.action == "CreateTags":
            return [i for i in call.listed("ResourceId") if i.startswith(("ami-", "i-"))]
        if call.action in ("ModifyImageAttribute", "RunInstances"):
            return [call.one("ImageId")] if call.one("ImageId") else []
        return []

    # --- after forwarding
    # ----------------------------------------------------------------------------
    def record(self, call: Call, answer: bytes, prior: tuple[int, bytes] | None) -> None:
        """Note what a successful create or change made, with the old value ``prior`` read."""
        region = call.region
        if call.service == "ssm":
            if call.action == "PutParameter" and prior is not None:
                name = str(call.body.get("Name", ""))
                status, old = prior
                if status >= 400:
                    self._hide(region, f"ssm:{name}")
                else:
                    self._remember(region, "parameter", name, json.loads(old).get("Parameter"))
            return
        if call.service != "ec2":
            return
        if call.action in _CREATES:
            root = ET.fromstring(answer)
            if call.action == "RunInstances":
                for item in _items(_child(root, "instancesSet")):
                    self._hide(region, _text(item, "instanceId"))
            elif call.action == "CreateLaunchTemplateVersion":
                v = _child(root, "launchTemplateVersion")
                if v is not None:
                    self._hide(
                        region, f"{_text(v, 'launchTemplateId')}:{_text(v, 'versionNumber')}"
                    )
            elif _text(root, "imageId"):
                self._hide(region, _text(root, "imageId"))
        elif call.action == "CreateTags" and prior is not None and prior[0] < 400:
            before: dict[str, dict[str, str]] = {i: {} for i in call.listed("ResourceId")}
            for item in _items(_child(ET.fromstring(prior[1]), "tagSet")):
                before.setdefault(_text(item, "resourceId"), {})[_text(item, "key")] = _text(
                    item, "value"
                )
            for ident, tags in before.items():
                self._remember(region, "tags", ident, tags)
        elif call.action == "ModifyImageAttribute" and prior is not None and prior[0] < 400:
            self._remember(region, "launch-permission", call.one("ImageId"), prior[1])

    def rewrite(self, call: Call, answer: bytes) -> bytes:
        """A listing's answer without what is not visible yet, changed resources with their old
        tags."""
        with self._lock:
            active = any(k[0] == call.region for k in self._new) or any(
                k[0] == call.region for k in self._old
            )
        if not active:
            return answer
        if call.service == "ssm" and call.action == "GetParameters":
            return self._rewrite_parameters(call, answer)
        if call.service != "ec2" or call.action not in (
            "DescribeImages",
            "DescribeInstances",
            "DescribeLaunchTemplateVersions",
        ):
            return answer
        root = ET.fromstring(answer)
        ET.register_namespace("", root.tag[1:].split("}")[0] if root.tag.startswith("{") else "")
        filters = call.tag_filters()
        changed = False
        if call.action == "DescribeImages":
            changed = self._prune(call, _child(root, "imagesSet"), "imageId", filters)
        elif call.action == "DescribeInstances":
            reservations = _child(root, "reservationSet")
            for res in _items(reservations):
                changed |= self._prune(call, _child(res, "instancesSet"), "instanceId", filters)
                if not _items(_child(res, "instancesSet")) and reservations is not None:
                    reservations.remove(res)
        else:
            lt = call.one("LaunchTemplateId")
            versions = _child(root, "launchTemplateVersionSet")
            for item in _items(versions):
                if self.hidden(
                    call.region,
                    f"{lt or _text(item, 'launchTemplateId')}:{_text(item, 'versionNumber')}",
                ):
                    versions.remove(item)  # type: ignore[union-attr]
                    self._count("left_out")
                    changed = True
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) if changed else answer

    def _prune(
        self,
        call: Call,
        items: ET.Element | None,
        id_name: str,
        filters: list[tuple[str, list[str]]],
    ) -> bool:
        changed = False
        for item in _items(items):
            ident = _text(item, id_name)
            old = self._stale(call.region, "tags", ident)
            if self.hidden(call.region, ident) or (
                old is not None and filters and not _matches(old, filters)
            ):
                items.remove(item)  # type: ignore[union-attr]
                self._count("left_out")
                changed = True
            elif old is not None and old != _tags_of(item):
                tag_set = _child(item, "tagSet")
                if tag_set is None:
                    tag_set = ET.SubElement(item, item.tag.replace(_strip(item.tag), "tagSet"))
                for child in list(tag_set):
                    tag_set.remove(child)
                ns = item.tag[: -len(_strip(item.tag))]
                for key, value in sorted(old.items()):
                    entry = ET.SubElement(tag_set, f"{ns}item")
                    ET.SubElement(entry, f"{ns}key").text = key
                    ET.SubElement(entry, f"{ns}value").text = value
                self._count("old_value")
                changed = True
        return changed

    def _rewrite_parameters(self, call: Call, answer: bytes) -> bytes:
        doc = json.loads(answer)
        kept, invalid = [], list(doc.get("InvalidParameters", []))
        for p in doc.get("Parameters", []):
            old = self._stale(call.region, "parameter", p.get("Name", ""))
            if self.hidden(call.region, f"ssm:{p.get('Name', '')}"):
                invalid.append(p.get("Name", ""))
                self._count("left_out")
            elif old is not None:
                kept.append(old)
                self._count("old_value")
            else:
                kept.append(p)
        return json.dumps({**doc, "Parameters": kept, "InvalidParameters": invalid}).encode()
