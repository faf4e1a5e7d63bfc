"""One object carries what every command needs: settings, state store, AWS factory, clock, output.

Commands receive it from click (``ctx.obj``); tests build their own. Everything is made lazily, so
``imagefleet init`` runs with no config and ``imagefleet changelog diff a.manifest b.manifest``
needs no AWS at all. The config schema and the store load on first use too, so a command that
needs neither (``--version``, ``changelog diff`` of two files) does not import them.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import TYPE_CHECKING

from orchestrator.clock import Clock
from orchestrator.errors import NotFoundError, UsageError
from orchestrator.output import Output

_VERSION = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)

if TYPE_CHECKING:  # boto3 loads only when a command talks to AWS
    from tenacity import RetryCallState

    from orchestrator.aws import AwsFactory
    from orchestrator.config import Settings
    from orchestrator.store import BaseVersion, StateStore


class Context:
    def __init__(
        self,
        *,
        config_path: str | os.PathLike[str] | None = None,
        json_mode: bool = False,
        debug: bool = False,
        output: Output | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.config_path = config_path
        self.debug = debug
        self.out = output or Output()
        self.json_mode = json_mode or self.out.json_mode
        self.clock = clock or Clock.from_env()
        if settings is not None:
            self.__dict__["settings"] = settings

    @property
    def json_mode(self) -> bool:
        """``--json`` was given: the output prints results as JSON."""
        return self.out.json_mode

    @json_mode.setter
    def json_mode(self, value: bool) -> None:
        self.out.json_mode = value

    @cached_property
    def settings(self) -> Settings:
        from orchestrator import config

        return config.load(self.config_path)

    @cached_property
    def store(self) -> StateStore:
        from orchestrator.store import open_store

        store = open_store(self.settings)
        store.assumed_roles = self._assumed_roles
        return store

    def _assumed_roles(self) -> dict[str, str]:
        """The member roles this command assumed so far (none when it made no AWS client)."""
        # a stand-in factory (the simulator's) may assume nothing and not say so
        assumed = getattr(self.__dict__.get("aws"), "assumed_roles", None)
        return dict(assumed()) if callable(assumed) else {}

    @cached_property
    def aws(self) -> AwsFactory:
        from orchestrator.aws import AwsFactory

        def on_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.out.note(
                f"[dim]retrying after {type(exc).__name__}: {exc} (attempt "
                f"{state.attempt_number})[/dim]"
            )

        return AwsFactory.from_settings(
            self.settings, on_retry=on_retry, sleep=self.clock.sleep, now=self.clock.time
        )

    @cached_property
    def actor(self) -> str:
        """Who is acting, for the audit trail: the STS caller identity."""
        return self.aws.caller_arn()

    # --- resolving what the user typed ------------------------------------------------------------
    def resolve_base(self, ref: str, family: str | None = None) -> BaseVersion:
        """``FAMILY:VERSION``, ``FAMILY:STAGE``, an AMI id, or a bare version with --family.

        Parsed strictly: no surrounding whitespace, ASCII digits only, versions below a billion.
        """
        from orchestrator import schema
        from orchestrator.config import STAGES

        if schema.AMI_ID.matches(ref):
            return self.store.find_base_by_ami(ref)
        fam, sep, rest = ref.rpartition(":")
        if not sep:
            fam, rest = family or "", ref
        if not fam:
            raise NotFoundError(
                f"cannot tell which base {schema.shown(ref)} means",
                hint="use FAMILY:VERSION (e.g. demo:3), FAMILY:STAGE, or an AMI id",
            )
        if not schema.FAMILY.matches(fam):
            raise UsageError(f"{schema.shown(ref)}: expected {schema.FAMILY.what} before ':'")
        self.settings.family(fam)
        if rest in STAGES:
            version = self.store.pointer(fam, rest)
            if version is None:
                raise NotFoundError(f"{fam} has no {rest} base yet")
            return self.store.get_base(fam, version)
        if not _VERSION.fullmatch(rest):
            raise UsageError(
                f"{schema.shown(ref)}: expected a version number (1 to 999999999) or a stage "
                f"({', '.join(STAGES)}) after '{fam}:'"
            )
        return self.store.get_base(fam, int(rest))
