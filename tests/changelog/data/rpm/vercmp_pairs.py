"""Print the version pairs whose rpm order the tests check (a<TAB>b per line), for regenerate.sh.

Usage: python vercmp_pairs.py FIXTURE_DIR
"""

import itertools
import sys
from pathlib import Path

here = Path(sys.argv[1])


def table(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, version = line.split("\t")[:2]
        out[name] = version
    return out


pairs = []
old, new = table(here / "al2023-2023.1.20230719.tsv"), table(here / "al2023-2023.1.20230809.tsv")
pairs += [(old[n], new[n]) for n in sorted(old) if n in new and old[n] != new[n]]


# the EL10 list's versions against AL2023's for the packages both have
def nevras(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.rsplit(".", 1)[0] if line.endswith((".x86_64", ".noarch")) else line
        name, version, release = parts.rsplit("-", 2)
        out.setdefault(name, f"{version}-{release}")
    return out


el10 = nevras(here / "el10-repo-info.rpm-qa")
pairs += [(el10[n], new[n]) for n in sorted(el10) if n in new]
# the two EL10 snapshots: z-stream releases (.el10 -> .el10_2.4, .el10_1 -> .el10_2)
el10_older = nevras(here / "el10-repo-info-older.rpm-qa")
pairs += [(el10_older[n], el10[n]) for n in sorted(el10) if el10_older[n] != el10[n]]
edge = (here / "vercmp.in").read_text().split()
pairs += list(itertools.permutations(edge, 2))
for a, b in dict.fromkeys(pairs):
    print(f"{a}\t{b}")
    print(f"{b}\t{a}")
