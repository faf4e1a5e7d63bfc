#!/bin/sh
# Regenerate the rpm fixtures with the real rpm (Debian's `rpm` package: apt-get install -y rpm).
# Usage: sh regenerate.sh [AMAZON_LINUX_2023_CHECKOUT]  (the second part needs the checkout of
# github.com/amazonlinux/amazon-linux-2023 for its release notes; without it, it is skipped).
# Writes: image-{old,new}.rpm-qa, image-{old,new}.qf.tsv, image-new.nevra, image-new.srpm.tsv,
# changelogs/*.changelog, vercmp-expected.tsv, and al2023-*.tsv from the release notes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rpm --version

# 1. Two small "images": empty packages built from specs.in with rpmbuild and recorded in two
#    private rpm databases (--justdb), then queried with the very commands docs/changelog.md gives.
python3 "$here/make_specs.py" "$work/specs"
for side in old new; do
    for spec in "$work/specs/$side"/*.spec; do
        rpmbuild -bb --quiet --define "_topdir $work/build-$side" --define "debug_package %{nil}" \
            --define "_build_id_links none" "$spec" >/dev/null
    done
    mkdir -p "$work/db-$side"
    rpm --dbpath "$work/db-$side" --initdb
    rpm --dbpath "$work/db-$side" -i --justdb --nodeps --noscripts --ignorearch --ignoreos \
        "$work/build-$side"/RPMS/*/*.rpm
    rpm --dbpath "$work/db-$side" -qa | sort > "$here/image-$side.rpm-qa"
    rpm --dbpath "$work/db-$side" -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n' \
        | sort > "$here/image-$side.qf.tsv"
done
rpm --dbpath "$work/db-new" -qa --qf '%{NEVRA}\n' | sort > "$here/image-new.nevra"
rpm --dbpath "$work/db-new" -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\t%{SOURCERPM}\n' \
    | sort > "$here/image-new.srpm.tsv"
rpm --dbpath "$work/db-old" -qa --qf '%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\t%{SOURCERPM}\n' \
    | sort > "$here/image-old.srpm.tsv"
rm -rf "$here/changelogs" && mkdir "$here/changelogs"
for name in $(rpm --dbpath "$work/db-new" -qa --qf '%{NAME}\n'); do
    rpm --dbpath "$work/db-new" -q --changelog "$name" > "$here/changelogs/$name.changelog"
done

# 2. Amazon Linux 2023's published package lists (x86_64 + noarch rows of "All packages").
if [ $# -ge 1 ]; then
    for release in 2023.1.20230719 2023.1.20230809; do
        git -C "$1" show "HEAD:Release-Notes-Amazon-Linux-$release.md" > "$work/notes.md"
        python3 "$here/extract_al2023.py" "$work/notes.md" > "$here/al2023-$release.tsv"
    done
fi

# 3. rpm's own order for every pair of versions the tests compare: the AL2023 versions that changed
#    between the two releases, the EL10 list against the AL2023 one, and edge cases (vercmp.in).
python3 "$here/vercmp_pairs.py" "$here" > "$work/pairs.tsv"
{
    printf '%%{lua:\n'
    printf 'for line in io.lines("%s") do\n' "$work/pairs.tsv"
    printf '  local a, b = line:match("^([^\\t]*)\\t([^\\t]*)$")\n'
    printf '  print(a .. "\\t" .. b .. "\\t" .. rpm.vercmp(a, b) .. "\\n")\n'
    printf 'end}\n'
} > "$work/vercmp.lua"
rpm --eval "$(cat "$work/vercmp.lua")" | grep -v '^$' > "$here/vercmp-expected.tsv"
wc -l "$here/vercmp-expected.tsv"
