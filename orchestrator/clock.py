"""Time, injectable: soak windows, canary analysis windows and waits use a ``Clock``.

``IMAGEFLEET_TIME_SCALE=60`` makes every wait 60 times shorter and the reported time move 60
times faster, so a demo or a test walks through an hour of soak and analysis in a minute
without changing any configured duration.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, scale: float = 1.0, origin: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        # Scaled time runs `scale` times faster from `origin` (a wall-clock instant); processes
        # that share the origin (IMAGEFLEET_TIME_ORIGIN) agree on the time, e.g. the local agent
        # runner stamping metrics and the canary controller querying them.
        self.origin = time.time() if origin is None else origin
        self._mono0 = time.monotonic()

    @classmethod
    def from_env(cls) -> Clock:
        scale = float(os.environ.get("IMAGEFLEET_TIME_SCALE", "1") or 1)
        origin = os.environ.get("IMAGEFLEET_TIME_ORIGIN")
        if scale != 1 and not origin:
            origin = repr(time.time())
            os.environ["IMAGEFLEET_TIME_ORIGIN"] = origin  # inherited by the processes we start
        return cls(scale, float(origin) if origin else None)

    def time(self) -> float:
        """Seconds since the epoch, on the (possibly scaled) clock."""
        return self.origin + (time.time() - self.origin) * self.scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def since(self, iso: str) -> timedelta:
        """How long ago an ISO-8601 UTC timestamp (as the store writes them) was."""
        then = datetime.fromisoformat(iso)
        if then.tzinfo is None:
            then = then.replace(tzinfo=UTC)
        return self.now() - then


def human_age(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
