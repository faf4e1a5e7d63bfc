"""Turn Amazon Linux 2023's published release notes into name<TAB>version lists.

Usage: python extract_al2023.py RELEASE_NOTES.md > al2023-RELEASE.tsv

Reads the "All packages" table (| RPM Package | Architecture | Source RPM | Version |) and keeps
the x86_64 and noarch rows, unescaping the Markdown backslashes: what an x86_64 image of that
release could have installed, as `rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n'` prints it
(with the epoch as the notes give it, `E:`).
"""

import sys

rows = {}
inside = False
with open(sys.argv[1], encoding="utf-8") as fh:
    for line in fh:
        if line.startswith("| RPM Package | Architecture | Source RPM | Version |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            break
        if not inside or line.startswith("| ---"):
            continue
        cells = [c.strip().replace("\\", "") for c in line.strip().strip("|").split("|")]
        name, arch, _source, version = cells
        if arch in ("x86_64", "noarch"):
            rows.setdefault(name, version)
for name in sorted(rows):
    print(f"{name}\t{rows[name]}")
