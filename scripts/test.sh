#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration and doc tests.
#
# Before the tests it brings up the outside services some tests need (a Redis
# server, an OpenID Connect issuer, ...): each script in scripts/services.d/
# installs and starts its service if it is not already running, and exports
# the variable the tests read (REDIS_URL, OIDC_ISSUER_URL, ...). Tests that
# need a service print one line and skip when its variable is missing, except
# under CI (CI set), where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

for service in scripts/services.d/*.sh; do
    [ -e "$service" ] || continue
    echo "==> service: $service"
    # shellcheck source=/dev/null
    source "$service"
done

exec cargo test --workspace "$@"
