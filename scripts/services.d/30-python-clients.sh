# Sourced by scripts/test.sh: boto3 and the AWS CLI, for the tests that drive
# the management API with real AWS clients.
#
# Uses a python3 that already imports boto3 and has the `aws` command beside
# it; otherwise creates a virtualenv under ~/.cache/portcullis-python and
# pip-installs boto3 and awscli into it (once). Exports PORTCULLIS_PYTHON
# (the interpreter) and PORTCULLIS_AWS_CLI (the `aws` command).
portcullis_venv="${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-python"

python_ok() {
    "$1" -c "import boto3, botocore" >/dev/null 2>&1
}

PORTCULLIS_PYTHON=""
PORTCULLIS_AWS_CLI=""
if [ -x "$portcullis_venv/bin/python" ] && python_ok "$portcullis_venv/bin/python" && [ -x "$portcullis_venv/bin/aws" ]; then
    PORTCULLIS_PYTHON="$portcullis_venv/bin/python"
    PORTCULLIS_AWS_CLI="$portcullis_venv/bin/aws"
elif command -v python3 >/dev/null 2>&1 && python_ok "$(command -v python3)" && command -v aws >/dev/null 2>&1; then
    PORTCULLIS_PYTHON="$(command -v python3)"
    PORTCULLIS_AWS_CLI="$(command -v aws)"
else
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv) >/dev/null
    fi
    echo "installing boto3 and awscli into $portcullis_venv"
    python3 -m venv "$portcullis_venv" \
        && "$portcullis_venv/bin/pip" install -q boto3 awscli >/dev/null \
        && PORTCULLIS_PYTHON="$portcullis_venv/bin/python" \
        && PORTCULLIS_AWS_CLI="$portcullis_venv/bin/aws"
fi
if [ -n "$PORTCULLIS_PYTHON" ] && python_ok "$PORTCULLIS_PYTHON"; then
    export PORTCULLIS_PYTHON PORTCULLIS_AWS_CLI
    echo "PORTCULLIS_PYTHON=$PORTCULLIS_PYTHON PORTCULLIS_AWS_CLI=$PORTCULLIS_AWS_CLI"
else
    echo "boto3 could not be installed" >&2
    return 1
fi
