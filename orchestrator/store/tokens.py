"""Token buckets: API budgets shared by every process using the store, and the one rule for taking
from them (``bucket_take``) that every backend applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.errors import UsageError

BUCKET_KIND = "token-bucket"  # buckets are kept as documents of this kind in every backend
BUCKET_RACE_ATTEMPTS = 50  # re-reads of a bucket after another writer won, before giving up


@dataclass(frozen=True)
class TokenBucket:
    """An API budget shared by every process using the store: ``tokens`` as of ``updated_at``.

    ``capacity`` and ``refill_per_s`` come with each take, so a changed setting applies at once.
    """

    name: str
    tokens: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bucket_take(
    current: TokenBucket | None,
    name: str,
    count: float,
    *,
    capacity: float,
    refill_per_s: float,
    now: float,
    reserve: bool = False,
) -> tuple[TokenBucket | None, float]:
    """The token-bucket rule every backend applies. A new bucket starts full.

    Without ``reserve``: (new state, 0.0) when ``count`` tokens are taken, (None, seconds until
    they will be there) when not. With ``reserve`` the tokens are always taken, the bucket going
    into debt if need be, and the seconds until they are really there come back with the new
    state: the caller sleeps exactly that long and then acts. Reservations queue takers in the
    order they came, so many waiters never retry in a herd, and the rate is kept exactly.

    A take larger than ``capacity`` could never succeed, so it is bad input. Time that runs
    backwards (another machine's clock behind ours) refills nothing rather than draining.
    """
    if count > capacity:
        raise UsageError(
            f"cannot take {count:g} tokens from bucket {name} of capacity {capacity:g}"
        )
    if current is None:
        tokens, at = capacity, now
    else:
        tokens = min(capacity, current.tokens + max(0.0, now - current.updated_at) * refill_per_s)
        at = max(now, current.updated_at)
    if tokens >= count:
        return TokenBucket(name, tokens - count, at), 0.0
    if refill_per_s <= 0:
        raise UsageError(
            f"bucket {name} holds {tokens:g} tokens and never refills; {count:g} will never come"
        )
    wait = (count - tokens) / refill_per_s
    return (TokenBucket(name, tokens - count, at), wait) if reserve else (None, wait)
