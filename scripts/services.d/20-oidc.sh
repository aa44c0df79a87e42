# Sourced by scripts/test.sh: a real OpenID Connect issuer (oidc-provider,
# from npm) on http://127.0.0.1:47801, for portcullis-jwt's discovery, key
# rotation and issuer-down tests.
#
# Uses the issuer already answering there, else installs Node.js (Debian's
# packages) if missing, installs oidc-provider (npm ci in scripts/oidc) and
# starts scripts/oidc/server.mjs in the background. Waits at most 20 s.
# Exports OIDC_ISSUER_URL and OIDC_ADMIN_URL.
oidc_port=47801
oidc_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../oidc" && pwd)"
oidc_state=/tmp/portcullis-oidc

oidc_health() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 2 "http://127.0.0.1:${oidc_port}/__admin/health" >/dev/null 2>&1
    else
        (exec 3<>"/dev/tcp/127.0.0.1/${oidc_port}" \
            && printf 'GET /__admin/health HTTP/1.0\r\n\r\n' >&3 \
            && timeout 2 head -c 12 <&3 | grep -q ' 200') 2>/dev/null
    fi
}

if ! oidc_health; then
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "installing nodejs and npm"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >/dev/null
    fi
    if [ ! -d "${oidc_dir}/node_modules/oidc-provider" ]; then
        echo "installing oidc-provider"
        (cd "${oidc_dir}" && npm ci --no-audit --no-fund --loglevel=error) >/dev/null
    fi
    mkdir -p "${oidc_state}"
    OIDC_PORT="${oidc_port}" nohup node "${oidc_dir}/server.mjs" \
        >"${oidc_state}/server.log" 2>&1 </dev/null &
    echo $! >"${oidc_state}/pid"
    disown 2>/dev/null || true
    for _ in $(seq 1 100); do oidc_health && break; sleep 0.2; done
fi
if ! oidc_health; then
    echo "the OIDC issuer did not start on 127.0.0.1:${oidc_port}; see ${oidc_state}/server.log" >&2
    return 1
fi
export OIDC_ISSUER_URL="http://127.0.0.1:${oidc_port}"
export OIDC_ADMIN_URL="${OIDC_ISSUER_URL}/__admin"
echo "OIDC_ISSUER_URL=${OIDC_ISSUER_URL}"
