"""`make bench`: every area's benchmark, each in its own process so memory figures stay separate."""

from __future__ import annotations

import subprocess
import sys
import time

AREAS = ("changelog.bench", "canary.bench", "perf.bench")


def main() -> None:
    failed = []
    for module in AREAS:
        print(f"\n=== {module} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module])
        print(f"--- {module}: {time.monotonic() - started:.1f}s, exit {code}", flush=True)
        if code:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
