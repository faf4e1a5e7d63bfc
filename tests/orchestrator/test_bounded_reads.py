"""Readers of user files stop at their limits: /dev/zero, a 1 GiB line, a gzip bomb — exit 2,
bounded memory.

Each command runs in a child process whose address space is capped (RLIMIT_AS) well above what
the interpreter with pandas and scipy needs but far below what reading the input whole would
take; the child must end with exit 2, one `error:` line naming the file and the limit.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefleet.cli import raw_main
from orchestrator import inputs
from orchestrator.context import Context
from orchestrator.errors import ChangelogFileError, InputFormatError
from orchestrator.output import Output

ROOT = Path(__file__).resolve().parents[2]
# Address space, not resident memory: numpy, scipy and pandas map far more than they touch, so the
# cap sits above an idle `perf compare` (about 1.4 GB of mappings) and below any whole read.
CAP = 2 << 30
RSS_LIMIT_KB = 200 * 1024


def run_capped(tmp_path: Path, *args: str) -> tuple[int, str, int]:
    """``imagefleet ARGS`` in a child with RLIMIT_AS = CAP; (exit code, stderr, peak RSS in KiB).

    The peak is the child's own ``VmHWM`` (its address space's high-water mark after exec), written
    at exit: ``wait4``'s ``ru_maxrss`` would also count the pages of the (large) test process the
    child was forked from before it exec'd."""
    peak = tmp_path / "peak-rss-kb"
    capped = (
        f"import atexit, resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, ({CAP}, "
        f"{CAP})); "
        "atexit.register(lambda: open("
        + repr(str(peak))
        + ", 'w').write(next(l.split()[1] for l in "
        "open('/proc/self/status') if l.startswith('VmHWM:')))); "
        "sys.argv[0] = 'imagefleet'; runpy.run_module('imagefleet.cli', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", capped, *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stderr, int(peak.read_text())


@pytest.fixture
def one_gib_line(tmp_path: Path) -> Path:
    """A 1 GiB file without a newline (sparse: no disk used)."""
    p = tmp_path / "huge.manifest"
    with p.open("wb") as fh:
        fh.truncate(1 << 30)
    return p


def assert_refused(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert lines[0].startswith("error:") and len(lines) <= 2 and "unexpected" not in err, err[
        -2000:
    ]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_canary_judge_of_dev_zero_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"metrics": {"lat": [1.0, 2.0, 3.0]}}')
    code, err, rss = run_capped(
        tmp_path, "canary", "judge", "--baseline", "a.json", "--canary", "/dev/zero"
    )
    assert_refused(code, err, "/dev/zero", "8 MiB limit")
    assert rss < RSS_LIMIT_KB, f"peak RSS {rss} KiB"


def test_perf_compare_of_dev_zero_and_of_a_1gib_line(tmp_path: Path, one_gib_line: Path) -> None:
    ok = tmp_path / "ok.csv"
    ok.write_text("metric,value,unit,instance_type,arm\nm,1.0,ms,m5.large,new\n")
    code, err, rss = run_capped(tmp_path, "perf", "compare", "/dev/zero", "ok.csv")
    assert_refused(code, err, "/dev/zero", "line longer than the 1 MiB limit")
    code, err, rss2 = run_capped(tmp_path, "perf", "compare", str(one_gib_line), "ok.csv")
    assert_refused(code, err, str(one_gib_line), ":1: a line longer than the 1 MiB limit")
    assert max(rss, rss2) < RSS_LIMIT_KB, f"peak RSS {max(rss, rss2)} KiB"


def test_a_1gib_one_line_manifest_is_refused_before_it_is_read(
    tmp_path: Path, one_gib_line: Path
) -> None:
    code, err, rss = run_capped(tmp_path, "changelog", "diff", str(one_gib_line), str(one_gib_line))
    assert_refused(code, err, str(one_gib_line), "32 MiB limit for a manifest file")
    assert rss < RSS_LIMIT_KB, f"peak RSS {rss} KiB"


def test_a_manifest_line_past_the_limit_is_named(tmp_path: Path) -> None:
    m = tmp_path / "long.manifest"
    m.write_bytes(b"openssl\t3.0.13\nzlib1g\t1.3\n" + b"a" * (3 << 20) + b"\t1.0\n")
    code, err, _ = run_capped(tmp_path, "changelog", "diff", str(m), str(m))
    assert_refused(code, err, f"{m}:3: a line longer than the 1 MiB limit")


def test_a_config_past_its_limit_is_refused_unread(tmp_path: Path) -> None:
    cfg = tmp_path / "imagefleet.toml"
    with cfg.open("wb") as fh:
        fh.truncate(1 << 30)
    code, err, rss = run_capped(tmp_path, "--config", str(cfg), "status")
    assert_refused(code, err, str(cfg), "1 MiB limit for a config file")
    assert rss < RSS_LIMIT_KB


def test_limits_in_process(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(inputs.LIMITS["judge"] + 1)
    with pytest.raises(InputFormatError, match="8 MiB limit for a judge file"):
        inputs.read_bounded(big, "judge", lines=False)
    exact = tmp_path / "exact.txt"
    exact.write_bytes(
        b"x" * inputs.MAX_LINE + b"\n" + b"y" * 10
    )  # a line of exactly the limit is fine
    assert len(inputs.read_bounded(exact, "manifest")) == inputs.MAX_LINE + 11
    exact.write_bytes(b"ok\n" + b"x" * (inputs.MAX_LINE + 1) + b"\n")
    with pytest.raises(InputFormatError, match=r"exact.txt:2: a line longer"):
        inputs.read_bounded(exact, "manifest")


@pytest.mark.slow  # one of the longest (20-50 s): runs in `make test-slow`, and so in CI
def test_a_gzip_bomb_changelog_stops_at_the_limit(tmp_path: Path) -> None:
    """65 MiB of newlines in 65 KiB of gzip: the changelog reader stops at 64 MiB, naming the
    file."""
    from changelog.sources import DirectorySource, Found

    cl = tmp_path / "cl"
    cl.mkdir()
    with gzip.open(cl / "openssl.changelog.Debian.gz", "wb") as fh:
        for _ in range(65):
            fh.write(b"\n" * (1 << 20))
    found = DirectorySource(cl).lookup(["openssl"], "3.0")
    assert isinstance(found, Found)
    with pytest.raises(ChangelogFileError, match="64 MiB limit for a changelog file"):
        sum(1 for _ in found.open())


def test_changelog_dir_links_out_of_the_tree_are_not_followed(tmp_path: Path) -> None:
    from changelog.sources import DirectorySource, Found, Missing

    cl = tmp_path / "cl"
    (cl / "usr/share/doc/openssl").mkdir(parents=True)
    (cl / "openssl.changelog.Debian").symlink_to("/etc/passwd")
    (cl / "usr/share/doc/openssl/changelog.Debian").symlink_to("../../../../../../../../etc/passwd")
    (cl / "usr/share/doc/libssl3t64").symlink_to("openssl")  # a link inside the tree is fine
    result = DirectorySource(cl).lookup(["openssl"], "3.0")
    assert (
        isinstance(result, Missing)
        and "a link out of" in result.reason
        and "not followed" in result.reason
    )
    (cl / "real.changelog").write_text(
        "openssl (3.0) noble; urgency=medium\n\n  * x\n\n -- A <a@b>  Mon, 01 Jan 2024 00:00:00 "
        "+0000\n"
    )
    (cl / "usr/share/doc/openssl/changelog.Debian").unlink()
    (cl / "usr/share/doc/openssl/changelog.Debian").symlink_to(cl / "real.changelog")
    (cl / "openssl.changelog.Debian").unlink()
    inside = DirectorySource(cl).lookup(["libssl3t64"], "3.0")
    assert isinstance(inside, Found) and "openssl (3.0)" in next(inside.open())


def test_samples_from_a_pipe_are_named_as_given(tmp_path: Path) -> None:
    """A non-regular file is copied within the limits; errors still name the path the user gave."""
    fifo = tmp_path / "samples.fifo"
    os.mkfifo(fifo)
    ok = tmp_path / "ok.csv"
    ok.write_text("metric,value,unit,instance_type,arm\nm,1.0,ms,m5.large,new\n")
    writer = subprocess.Popen(["sh", "-c", f"printf 'metric,value\\nm,1\\n' > {fifo}"])
    err = io.StringIO()
    code = raw_main(
        ["perf", "compare", str(fifo), str(ok)],
        obj=Context(output=Output(stdout=io.StringIO(), stderr=err)),
    )
    writer.wait(timeout=30)
    assert code == 2 and str(fifo) in err.getvalue() and "imagefleet-input-" not in err.getvalue()


def test_a_huge_packer_template_is_refused_unread(tmp_path: Path) -> None:
    from orchestrator.errors import ConfigError
    from pipelines.packer.template import load

    t = tmp_path / "huge.json"
    with t.open("wb") as fh:
        fh.truncate(1 << 30)
    with pytest.raises(ConfigError, match="4 MiB limit for a template file"):
        load(t, where="families.demo.template")
