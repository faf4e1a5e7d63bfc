"""Leases: one holder at a time for whatever a command changes.

Promotion and rollback hold ``stage:<family>:<stage>``, a bake holds ``bake:<family>``, a perf
run ``perf:<family>:<version>``, a canary rollout ``rollout:<id>`` while it runs plus a claim on
every ``group:<region>:<name>`` until it ends. A lease names its holder (actor, host, pid, the
command) and expires unless its heartbeat renews it, so a crashed holder's lease lapses and the
next run takes it over and resumes the journal. On the holder's own host a dead pid frees the
lease at once; elsewhere expiry does.

A command that finds its lease taken is refused at once (``LeaseHeldError``, exit 1) or, with
``--wait``, polls until the lease is free.

Fencing: every acquisition carries a token larger than any before. ``hold`` yields a ``Holding``
whose ``store`` is the store fenced on (names, owner, token): each write made through it is
conditioned, atomically, on the lease still being ours with that token, and ``Holding.check``
(run by the journal before every step) stops a holder that lost its lease before its next side
effect with ``LeaseLostError`` (exit 1, naming the new holder).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from orchestrator.engine import KillPoint
from orchestrator.errors import LeaseHeldError, LeaseLostError, NotFoundError
from orchestrator.local.processes import pid_alive
from orchestrator.store import Fence, Lease, StateStore, lease_blocks

OnWait = Callable[[LeaseHeldError], None]  # told of each poll while a --wait command waits

# `[state] lease_ttl`'s default: a holder that misses this long of heartbeats is presumed dead
DEFAULT_TTL_S = 120.0
WAIT_POLL_S = 5.0

# Owners this process holds right now. A lease naming this very pid but an owner not in here was
# left by a run that died inside this process (tests simulate kill -9 this way): it is dead.
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


class LeaseClock(Protocol):
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


def lease_name(kind: str, *parts: object) -> str:
    return ":".join([kind, *(str(p) for p in parts)])


def holder_is_dead(lease: Lease) -> bool:
    """Can we tell for sure that the lease's holder is gone? Only on its own host."""
    if lease.pid <= 0 or lease.host != socket.gethostname():
        return False
    if lease.pid == os.getpid():
        with _LIVE_LOCK:
            return lease.owner not in _LIVE
    return not pid_alive(lease.pid)


def new_owner() -> str:
    return uuid.uuid4().hex


def _leases(
    names: list[str],
    owner: str,
    actor: str,
    command: str,
    now: float,
    expires_at: float | None,
    pid: int,
) -> list[Lease]:
    host = socket.gethostname()
    return [Lease(n, owner, actor, host, pid, command, now, now, expires_at) for n in names]


def acquire(
    store: StateStore,
    names: list[str],
    *,
    clock: LeaseClock,
    actor: str,
    command: str,
    owner: str,
    ttl_s: float | None = DEFAULT_TTL_S,
    wait: bool = False,
    on_wait: OnWait | None = None,
) -> int:
    """Take every name or none; with ``wait`` poll (on the clock) until they are free. Returns the
    fencing token the leases carry."""
    pid = os.getpid() if ttl_s is not None else 0
    while True:
        now = clock.time()
        expires = now + ttl_s if ttl_s is not None else None
        try:
            return store.acquire_leases(
                _leases(names, owner, actor, command, now, expires, pid),
                now=now,
                is_dead=holder_is_dead,
            )
        except LeaseHeldError as held:
            if not wait:
                raise
            if callable(on_wait):
                on_wait(held)
            clock.sleep(WAIT_POLL_S)


class _Heartbeat(threading.Thread):
    """Renews the leases every third of their TTL (real seconds, scaled like the clock)."""

    def __init__(
        self, store: StateStore, owner: str, names: list[str], clock: LeaseClock, ttl_s: float
    ) -> None:
        super().__init__(name=f"lease-heartbeat-{owner[:8]}", daemon=True)
        self.store, self.owner, self.names, self.clock, self.ttl_s = (
            store,
            owner,
            names,
            clock,
            ttl_s,
        )
        self.stopped = threading.Event()
        self.lost: LeaseLostError | None = None
        scale = float(getattr(clock, "scale", 1.0) or 1.0)
        self.interval = max(0.5, ttl_s / 3 / scale)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            now = self.clock.time()
            try:
                self.store.renew_leases(
                    self.owner, self.names, now=now, expires_at=now + self.ttl_s
                )
            except LeaseLostError as exc:
                self.lost = exc
                return
            except Exception:  # a store hiccup: the next beat tries again, expiry is the backstop
                continue


@dataclass(frozen=True)
class Holding:
    """What ``hold`` yields: the owner token, the fence, and the store fenced on it.

    Everything the holder writes goes through ``store``; ``check`` raises ``LeaseLostError`` when
    the heartbeat found the lease taken over or the store no longer shows it ours."""

    owner: str
    fence: Fence
    store: StateStore

    def check(self) -> None:
        self.store.check_fence()


@contextmanager
def hold(
    store: StateStore,
    names: list[str],
    *,
    clock: LeaseClock,
    actor: str,
    command: str,
    ttl_s: float | None = None,
    wait: bool = False,
    on_wait: OnWait | None = None,
) -> Iterator[Holding]:
    """Hold ``names`` for the block, heartbeating; yields a ``Holding`` whose ``store`` writes
    only while the lease is still ours (``ttl_s``: ``[state] lease_ttl``, 120 s by default).

    Released on the way out, except when the process is "killed" (``KillPoint`` in tests): like a
    real kill, the lease stays until it expires or its holder is seen dead.
    """
    ttl = DEFAULT_TTL_S if ttl_s is None else ttl_s
    owner = new_owner()
    token = acquire(
        store,
        names,
        clock=clock,
        actor=actor,
        command=command,
        owner=owner,
        ttl_s=ttl,
        wait=wait,
        on_wait=on_wait,
    )
    with _LIVE_LOCK:
        _LIVE.add(owner)
    beat = _Heartbeat(store, owner, names, clock, ttl)
    fence = Fence(tuple(names), owner, token)

    def alive() -> None:  # the heartbeat's verdict, asked before every fenced write and check
        if beat.lost is not None:
            raise beat.lost

    held = Holding(owner, fence, store.fenced(fence, alive=alive))
    beat.start()
    killed = False
    try:
        yield held
        if beat.lost:
            raise beat.lost
    except KillPoint:
        killed = True
        raise
    finally:
        beat.stopped.set()
        with _LIVE_LOCK:
            _LIVE.discard(owner)
        if not killed:
            store.release_leases(owner, names)


def current_holder(store: StateStore, name: str, now: float) -> Lease | None:
    """The live holder of ``name``, if any (an expired or dead holder is none)."""
    for lease in store.leases():
        if lease.name == name and lease_blocks(lease, "", now, holder_is_dead):
            return lease
    return None


def claim(
    store: StateStore, names: list[str], *, owner: str, clock: LeaseClock, actor: str, command: str
) -> None:
    """A claim without expiry (e.g. a rollout on its groups): released by ``release`` only."""
    acquire(store, names, clock=clock, actor=actor, command=command, owner=owner, ttl_s=None)


def release(store: StateStore, owner: str) -> None:
    store.release_leases(owner)


def find(store: StateStore, name: str) -> Lease:
    """The lease named ``name`` (NotFoundError, exit 2, when nobody holds it)."""
    lease = next((x for x in store.leases() if x.name == name), None)
    if lease is None:
        raise NotFoundError(
            f"no lease named {name!r} is held", hint="'imagefleet leases' lists every lease"
        )
    return lease


def force_release(store: StateStore, lease: Lease, *, actor: str, reason: str, now: float) -> bool:
    """The operator's way out (``leases --release NAME --force``): free one lease, audited with its
    holder. Returns whether its holder looked alive (not expired, not seen dead)."""
    alive = lease_blocks(lease, "", now, holder_is_dead)
    store.release_leases(lease.owner, [lease.name])
    store.audit(
        actor,
        "lease-released",
        lease.name,
        reason,
        details={**lease.to_dict(), "holder_alive": alive},
    )
    return alive
