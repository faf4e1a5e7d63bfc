#!/usr/bin/env bash
# Stands in for the EKS worker install: records what the build was given, then the package list.
set -o pipefail -o nounset -o errexit
echo "kubernetes ${KUBERNETES_VERSION} (${KUBERNETES_BUILD_DATE}) from ${BINARY_BUCKET_NAME}" > "$(dirname "$MANIFEST")/install.log"
echo "${SEEN_ACCESS_KEY}" > "$(dirname "$MANIFEST")/seen-access-key"
cp "$RECIPE" "$MANIFEST"
