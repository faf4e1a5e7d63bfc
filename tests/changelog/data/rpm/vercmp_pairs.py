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
el10 = {}
for line in (here / "el10-repo-info.rpm-qa").read_text().splitlines():
    parts = line.rsplit(".", 1)[0] if line.endswith((".x86_64", ".noarch")) else line
    name, version, release = parts.rsplit("-", 2)
    el10[name] = f"{version}-{release}"
pairs += [(el10[n], new[n]) for n in sorted(el10) if n in new]
edge = (here / "vercmp.in").read_text().split()
pairs += list(itertools.permutations(edge, 2))
for a, b in dict.fromkeys(pairs):
    print(f"{a}\t{b}")
    print(f"{b}\t{a}")
