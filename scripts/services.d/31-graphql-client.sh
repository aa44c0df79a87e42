# Sourced by scripts/test.sh: a Python virtual environment with `gql` (a
# GraphQL client from PyPI, with its requests transport) and botocore (AWS's
# SigV4 signer), for the airline-graphql example's client tests.
#
# Uses the venv already built under ~/.cache/portcullis/graphql-client when it
# imports both, else creates it (installing python3-venv from Debian's
# packages if missing) and installs scripts/graphql-client/requirements.txt.
# Exports GRAPHQL_CLIENT_PYTHON, the venv's interpreter.
gql_client_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../graphql-client" && pwd)"
gql_client_venv="${HOME}/.cache/portcullis/graphql-client"

gql_client_ok() {
    "${gql_client_venv}/bin/python" -c 'import gql, gql.transport.requests, gql.transport.appsync_websockets, websockets, botocore.auth' >/dev/null 2>&1
}

if ! gql_client_ok; then
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "installing python3-venv"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv) >/dev/null
    fi
    echo "installing gql and botocore into ${gql_client_venv}"
    rm -rf "${gql_client_venv}"
    python3 -m venv "${gql_client_venv}" \
        && "${gql_client_venv}/bin/pip" install -q --disable-pip-version-check \
            -r "${gql_client_dir}/requirements.txt" >/dev/null
fi
if ! gql_client_ok; then
    echo "the GraphQL client (gql, botocore) did not install into ${gql_client_venv}" >&2
    return 1
fi
export GRAPHQL_CLIENT_PYTHON="${gql_client_venv}/bin/python"
echo "GRAPHQL_CLIENT_PYTHON=${GRAPHQL_CLIENT_PYTHON}"
