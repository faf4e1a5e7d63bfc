"""Write the spec files regenerate.sh builds: two Amazon Linux 2023-like images, OLD and NEW.

Usage: python make_specs.py OUTDIR  (writes OUTDIR/old/*.spec and OUTDIR/new/*.spec)

Versions are Amazon Linux 2023's (from its 2023.1 release notes), epochs as AL2023 gives them
(openssl 1:, vim 2:). The %changelog entries are written for the fixture in the spec format rpm
documents; rpm itself formats them for `rpm -q --changelog`. Each source's entries are newest
first; OLD's spec has those up to its own version.
"""

import sys
from pathlib import Path

AL = "Amazon Linux AMI <amazon-linux-ami@amazon.com>"
FEDORA = "Fedora Release Engineering <releng@fedoraproject.org>"

# source: (epoch, arch, subpackages, {side: (version, release)}, [(date, who, evr, lines)])
SOURCES = {
    "bash": (
        None,
        "x86_64",
        [],
        {"old": ("5.2.15", "1.amzn2023.0.1"), "new": ("5.2.15", "1.amzn2023.0.2")},
        [
            (
                "Tue Aug 01 2023",
                AL,
                "5.2.15-1.amzn2023.0.2",
                ["Fix CVE-2022-3715: heap overflow in valid_parameter_transform"],
            ),
            ("Wed Feb 01 2023", AL, "5.2.15-1.amzn2023.0.1", ["Rebuild for Amazon Linux 2023"]),
            (
                "Thu Jan 19 2023",
                FEDORA,
                "5.2.15-3",
                ["Rebuilt for https://fedoraproject.org/wiki/Fedora_38_Mass_Rebuild"],
            ),
        ],
    ),
    "openssl": (
        "1",
        "x86_64",
        ["libs"],
        {"old": ("3.0.8", "1.amzn2023.0.3"), "new": ("3.0.8", "1.amzn2023.0.4")},
        [
            (
                "Mon Jul 31 2023",
                AL,
                "1:3.0.8-1.amzn2023.0.4",
                [
                    "Fix CVE-2023-2975: AES-SIV ignores empty associated data",
                    "Fix CVE-2023-3446 and CVE-2023-3817: excessive time checking DH keys",
                ],
            ),
            (
                "Thu Jun 08 2023",
                AL,
                "1:3.0.8-1.amzn2023.0.3",
                ["Fix CVE-2023-2650: possible DoS translating ASN.1 object identifiers"],
            ),
            (
                "Tue Feb 07 2023",
                "Dmitry Belyavskiy <dbelyavs@redhat.com>",
                "1:3.0.8-1",
                ["Rebase to upstream version 3.0.8"],
            ),
        ],
    ),
    "curl": (
        None,
        "x86_64",
        ["minimal", "libcurl-minimal"],
        {"old": ("8.0.1", "1.amzn2023.0.1"), "new": ("8.2.1", "1.amzn2023.0.1")},
        [
            (
                "Wed Aug 02 2023",
                AL,
                "8.2.1-1.amzn2023.0.1",
                ["Update to 8.2.1", "Fixes CVE-2023-32001 (fopen race condition)"],
            ),
            (
                "Mon Jul 10 2023",
                AL,
                "8.1.2-1.amzn2023.0.1",
                [
                    "Update to 8.1.2",
                    "Fixes CVE-2023-28319, CVE-2023-28320, CVE-2023-28321 and CVE-2023-28322",
                ],
            ),
            ("Thu Apr 06 2023", AL, "8.0.1-1.amzn2023.0.1", ["Update to 8.0.1"]),
        ],
    ),
    "vim": (
        "2",
        "x86_64",
        ["minimal"],
        {"old": ("9.0.1592", "1.amzn2023.0.1"), "new": ("9.0.1677", "1.amzn2023.0.1")},
        [
            (
                "Fri Aug 04 2023",
                AL,
                "2:9.0.1677-1.amzn2023.0.1",
                ["Update to 9.0.1677", "Fixes CVE-2023-4733 and CVE-2023-4734"],
            ),
            ("Mon Jun 05 2023", AL, "2:9.0.1592-1.amzn2023.0.1", ["Update to 9.0.1592"]),
        ],
    ),
    "ca-certificates": (
        None,
        "noarch",
        [],
        {"old": ("2023.2.60", "1.0.amzn2023.0.2"), "new": ("2023.2.60", "1.0.amzn2023.0.1")},
        [
            (
                "Mon Jul 17 2023",
                AL,
                "2023.2.60-1.0.amzn2023.0.2",
                ["Remove the distrusted E-Tugra roots (CVE-2023-37920)"],
            ),
            (
                "Fri Jun 02 2023",
                AL,
                "2023.2.60-1.0.amzn2023.0.1",
                ["Update to CKBI 2.60 from NSS 3.89"],
            ),
        ],
    ),
    "kernel": (
        None,
        "x86_64",
        [],
        {"old": ("6.1.38", "59.109.amzn2023"), "new": ("6.1.41", "63.114.amzn2023")},
        [
            (
                "Mon Jul 31 2023",
                "Builder <builder@amazon.com>",
                "6.1.41-63.114.amzn2023",
                ["Package for 6.1.41"],
            ),
            (
                "Thu Jul 20 2023",
                "Builder <builder@amazon.com>",
                "6.1.38-59.109.amzn2023",
                ["Package for 6.1.38"],
            ),
        ],
    ),
    "sqlite": (
        None,
        "x86_64",
        ["libs"],
        {"old": ("3.40.0", "1.amzn2023.0.3"), "new": ("3.40.0", "1.amzn2023.0.3")},
        [
            ("Mon Jun 26 2023", AL, "3.40.0-1.amzn2023.0.3", ["Fix CVE-2022-46908"]),
        ],
    ),
    "amazon-ssm-agent": (
        None,
        "x86_64",
        [],
        {"new": ("3.2.1297.0", "1.amzn2023")},
        [
            ("Thu Jul 27 2023", AL, "3.2.1297.0-1.amzn2023", ["Update to 3.2.1297.0"]),
        ],
    ),
    "zram-generator": (
        None,
        "x86_64",
        [],
        {"old": ("1.1.2", "67.amzn2023")},
        [
            ("Thu Mar 16 2023", AL, "1.1.2-67.amzn2023", ["Import for Amazon Linux 2023"]),
        ],
    ),
}


def evr_tuple(evr: str) -> str:
    return evr.split(":", 1)[-1]


def spec(name: str, side: str) -> str | None:
    epoch, arch, subs, versions, log = SOURCES[name]
    if side not in versions:
        return None
    version, release = versions[side]
    own = f"{version}-{release}"
    # OLD's changelog: its own entry and the ones below it (the list is newest first).
    start = next(i for i, e in enumerate(log) if evr_tuple(e[2]) == own)
    lines = [
        f"Name: {name}",
        *([f"Epoch: {epoch}"] if epoch else []),
        f"Version: {version}",
        f"Release: {release}",
        "Summary: fixture package",
        "License: MIT",
        f"BuildArch: {arch}",
        "%description",
        "fixture package",
    ]
    for sub in subs:
        full = sub if "-" in sub else None
        head = f"%package -n {full}" if full else f"%package {sub}"
        lines += [
            head,
            "Summary: fixture subpackage",
            f"%description {'-n ' + full if full else sub}",
            "fixture subpackage",
        ]
    lines += ["%files"]
    for sub in subs:
        lines += [f"%files -n {sub}" if "-" in sub else f"%files {sub}"]
    lines += ["%changelog"]
    for date, who, evr, changes in log[start:]:
        lines.append(f"* {date} {who} - {evr}")
        lines += [f"- {c}" for c in changes]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1])
    for side in ("old", "new"):
        (out / side).mkdir(parents=True, exist_ok=True)
        for name in SOURCES:
            text = spec(name, side)
            if text is not None:
                (out / side / f"{name}.spec").write_text(text)


main()
