#!/usr/bin/env bash
# Push the component image to Keboola's registry and, for a semver tag, make it the component's version and push
# the Developer Portal properties (component_config/ and the sync actions: scripts/developer_portal/update_properties.sh).
#
# Usage: deploy.sh <tag> [local image]     e.g. deploy.sh 1.4.0 keboola-storage-sync:latest
# Environment (credentials only from here): KBC_DEVELOPERPORTAL_USERNAME, KBC_DEVELOPERPORTAL_PASSWORD,
# KBC_DEVELOPERPORTAL_VENDOR, KBC_DEVELOPERPORTAL_APP, PORTAL_CLI_IMAGE. The registry comes from the Developer
# Portal CLI. DOCKER (default docker) may name podman instead.
set -euo pipefail

TAG="${1:?usage: deploy.sh <tag> [local image]}"
LOCAL_IMAGE="${2:-keboola-storage-sync:latest}"
# The developer-portal-cli-v2 image reference, as Keboola's deployment docs give it.
: "${PORTAL_CLI_IMAGE:?PORTAL_CLI_IMAGE is not set (the developer-portal-cli-v2 image reference)}"

: "${KBC_DEVELOPERPORTAL_USERNAME:?KBC_DEVELOPERPORTAL_USERNAME is not set}"
: "${KBC_DEVELOPERPORTAL_PASSWORD:?KBC_DEVELOPERPORTAL_PASSWORD is not set}"
: "${KBC_DEVELOPERPORTAL_VENDOR:?KBC_DEVELOPERPORTAL_VENDOR is not set}"
: "${KBC_DEVELOPERPORTAL_APP:?KBC_DEVELOPERPORTAL_APP is not set}"

DOCKER="${DOCKER:-docker}"
export DOCKER PORTAL_CLI_IMAGE

portal() {
    # credentials are passed by name (-e VAR), never on the command line
    "${DOCKER}" run --rm \
        -e KBC_DEVELOPERPORTAL_USERNAME \
        -e KBC_DEVELOPERPORTAL_PASSWORD \
        "${PORTAL_CLI_IMAGE}" "$@"
}

"${DOCKER}" pull --quiet "${PORTAL_CLI_IMAGE}" >/dev/null

REPOSITORY="$(portal ecr:get-repository "${KBC_DEVELOPERPORTAL_VENDOR}" "${KBC_DEVELOPERPORTAL_APP}")"
if [[ -z "${REPOSITORY}" ]]; then
    echo "The Developer Portal returned no repository for ${KBC_DEVELOPERPORTAL_VENDOR}/${KBC_DEVELOPERPORTAL_APP}." >&2
    exit 1
fi
# ecr:get-login prints a `docker login ...` command for that repository's registry
eval "$(portal ecr:get-login "${KBC_DEVELOPERPORTAL_VENDOR}" "${KBC_DEVELOPERPORTAL_APP}")"

"${DOCKER}" tag "${LOCAL_IMAGE}" "${REPOSITORY}:${TAG}"
"${DOCKER}" push "${REPOSITORY}:${TAG}"

if [[ "${TAG}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    "${DOCKER}" tag "${LOCAL_IMAGE}" "${REPOSITORY}:latest"
    "${DOCKER}" push "${REPOSITORY}:latest"
    portal update-app-repository "${KBC_DEVELOPERPORTAL_VENDOR}" "${KBC_DEVELOPERPORTAL_APP}" "${TAG}" ecr "${REPOSITORY}"
    "$(dirname "${BASH_SOURCE[0]}")/scripts/developer_portal/update_properties.sh"
    echo "Deployed ${KBC_DEVELOPERPORTAL_VENDOR}.${KBC_DEVELOPERPORTAL_APP} version ${TAG} and its properties."
else
    echo "Pushed ${TAG}; not a release tag (x.y.z), so the Developer Portal version is unchanged."
fi
