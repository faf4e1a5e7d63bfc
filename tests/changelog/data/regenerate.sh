#!/bin/sh
# Regenerate the real-tool fixtures in this directory from the Debian machine it runs on
# (see README.md). Needs dpkg, dpkg-query and python3 with python-debian.
set -eu
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\n' > bookworm-query-arch.tsv
dpkg-query -W -f='${Package}\t${Version}\t${Source}\n' > bookworm-query-source.tsv
dpkg -l 'a*' 'c*' 'libc6' 'libcurl*' 'libssl*' 'openssl' 'dpkg' 'debconf' > bookworm-dpkg-l.txt

# An "older image": 58 packages put back one entry, to the previous version in their own
# changelog.Debian.gz (real versions these packages had before).
"$PY" - <<'PY'
import gzip, pathlib
from debian.changelog import Changelog
from debian.debian_support import Version
rows = [l.split("\t") for l in pathlib.Path("bookworm-query-arch.tsv").read_text().splitlines()]
older, out = 0, []
for name, version, arch in rows:
    bare = name.partition(":")[0]
    log = pathlib.Path(f"/usr/share/doc/{bare}/changelog.Debian.gz")
    if older < 58 and log.is_file():
        with gzip.open(log, "rt", errors="replace") as fh:
            head = [next(fh, "") for _ in range(400)]
        blocks = list(Changelog(head, strict=False, max_blocks=2))
        if len(blocks) == 2 and blocks[1].version < Version(version):
            version, older = str(blocks[1].version), older + 1
    out.append(f"{name}\t{version}\t{arch}")
pathlib.Path("bookworm-query-arch-old.tsv").write_text("\n".join(out) + "\n")
PY

# A dpkg status file: the stanzas of a few packages, copied as dpkg wrote them.
"$PY" - <<'PY'
import pathlib
keep = {"apt", "base-files", "bash", "ca-certificates", "curl", "debconf", "dpkg", "libc6",
        "libcurl3-gnutls", "libcurl4", "libssl3", "openssl", "tzdata"}
stanzas = pathlib.Path("/var/lib/dpkg/status").read_text().split("\n\n")
picked = [s for s in stanzas if s.split("\n", 1)[0].removeprefix("Package: ") in keep]
pathlib.Path("bookworm-status").write_text("\n\n".join(picked).strip("\n") + "\n")
PY

# Changelogs as an image tree: native packages' changelog.gz, curl's changelog.Debian.gz, and
# curl's upstream changelog.gz (its first 120 lines, recompressed: it is 99 kB).
root=bookworm-root/usr/share/doc
for pkg in apt debconf ca-certificates; do
    mkdir -p "$root/$pkg" && cp "/usr/share/doc/$pkg/changelog.gz" "$root/$pkg/"
done
mkdir -p "$root/libcurl3-gnutls"
cp /usr/share/doc/libcurl3-gnutls/changelog.Debian.gz "$root/libcurl3-gnutls/"
zcat /usr/share/doc/libcurl3-gnutls/changelog.gz | head -n 120 | gzip -9n > "$root/libcurl3-gnutls/changelog.gz"
