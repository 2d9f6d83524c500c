#!/usr/bin/env bash
# Push the Developer Portal properties of the component: every file of component_config/ that is a property
# (schemas, descriptions, URLs, logger, UI options) and the sync actions that src/component.py declares.
# deploy.sh runs it after a release; it can also be run alone (from any folder).
#
# Environment: KBC_DEVELOPERPORTAL_USERNAME, KBC_DEVELOPERPORTAL_PASSWORD (credentials only from here, passed to the
# CLI container by name), KBC_DEVELOPERPORTAL_VENDOR, KBC_DEVELOPERPORTAL_APP, PORTAL_CLI_IMAGE (the
# developer-portal-cli-v2 image reference, as Keboola's deployment docs give it), DOCKER (default docker; podman
# works too). DRY_RUN=1 prints what would be pushed and needs none of them.
#
# Development branches: the Developer Portal keeps them as component *features*, which Keboola support sets (there
# is no property to push). Storage Sync writes to other projects through the Storage API with its own tokens, which
# a branch's bucket prefixing does not cover, so it is meant to run with `dev-branch-configuration-unsafe`: a job
# in a development branch runs only after `runtime.safe: true` is set on the configuration.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONFIG="${ROOT}/component_config"
DRY_RUN="${DRY_RUN:-}"
DOCKER="${DOCKER:-docker}"

# property name  file in component_config/ (a missing or empty file is skipped)
PROPERTIES=(
    "isDeployReady              isDeployReady.md"
    "shortDescription           component_short_description.md"
    "longDescription            component_long_description.md"
    "configurationSchema        configSchema.json"
    "configurationRowSchema     configRowSchema.json"
    "configurationDescription   configuration_description.md"
    "documentationUrl           documentationUrl.md"
    "licenseUrl                 licenseUrl.md"
    "sourceCodeUrl              sourceCodeUrl.md"
    "logger                     logger"
    "loggerConfiguration        loggerConfiguration.json"
    "uiOptions                  uiOptions.md"
)

if [[ -z "${DRY_RUN}" ]]; then
    : "${KBC_DEVELOPERPORTAL_USERNAME:?KBC_DEVELOPERPORTAL_USERNAME is not set}"
    : "${KBC_DEVELOPERPORTAL_PASSWORD:?KBC_DEVELOPERPORTAL_PASSWORD is not set}"
    : "${PORTAL_CLI_IMAGE:?PORTAL_CLI_IMAGE is not set (the developer-portal-cli-v2 image reference)}"
fi
: "${KBC_DEVELOPERPORTAL_VENDOR:?KBC_DEVELOPERPORTAL_VENDOR is not set}"
: "${KBC_DEVELOPERPORTAL_APP:?KBC_DEVELOPERPORTAL_APP is not set}"

push() {
    local name="$1" value="$2" origin="$3"
    if [[ -z "${value//[[:space:]]/}" ]]; then
        echo "skip ${name}: ${origin} is empty"
        return
    fi
    if [[ -n "${DRY_RUN}" ]]; then
        echo "would set ${name} from ${origin} (${#value} bytes)"
        return
    fi
    "${DOCKER}" run --rm \
        -e KBC_DEVELOPERPORTAL_USERNAME \
        -e KBC_DEVELOPERPORTAL_PASSWORD \
        "${PORTAL_CLI_IMAGE}" \
        update-app-property "${KBC_DEVELOPERPORTAL_VENDOR}" "${KBC_DEVELOPERPORTAL_APP}" "${name}" --value="${value}"
    echo "set ${name} from ${origin}"
}

# The names in @sync_action("name") decorators of src/component.py, as a JSON list (sorted, unique).
sync_actions() {
    grep -oE "@sync_action\(\s*['\"][^'\"]+['\"]" "${ROOT}/src/component.py" \
        | sed -E "s/^@sync_action\(\s*['\"]//; s/['\"]$//" \
        | sort -u \
        | awk 'BEGIN { printf "[" } { printf "%s\"%s\"", (NR > 1 ? ", " : ""), $0 } END { printf "]" }'
}

if [[ -z "${DRY_RUN}" ]]; then
    "${DOCKER}" pull --quiet "${PORTAL_CLI_IMAGE}" >/dev/null
fi

for entry in "${PROPERTIES[@]}"; do
    read -r name file <<<"${entry}"
    if [[ ! -f "${CONFIG}/${file}" ]]; then
        echo "skip ${name}: no component_config/${file}"
        continue
    fi
    push "${name}" "$(<"${CONFIG}/${file}")" "component_config/${file}"
done

actions="$(sync_actions)"
if [[ "${actions}" == "[]" ]]; then
    echo "skip actions: src/component.py declares no sync action"
else
    push actions "${actions}" "the sync actions of src/component.py: ${actions}"
fi
