#!/usr/bin/env bash
set -o errexit
echo "FOO is ${FOO}" > "$(dirname "$MANIFEST")/setup.log"
pwd >> "$(dirname "$MANIFEST")/setup.log"
cp "$RECIPE" "$MANIFEST"
