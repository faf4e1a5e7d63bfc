#!/usr/bin/env bash
set -o errexit
test -s "$MANIFEST"
