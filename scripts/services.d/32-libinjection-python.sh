# Sourced by scripts/test.sh after 30-python-clients.sh: the PyPI package
# `libinjection-python` (it compiles the C libinjection library into its
# extension module, so it needs a C compiler) in the interpreter that script
# exports, for portcullis-waf's differential test against the C library
# (crates/portcullis-waf/tests/libinjection_c.rs). Exports
# PORTCULLIS_LIBINJECTION_PYTHON, an interpreter that imports it.
libinjection_ok() {
    "$1" -c "import libinjection" >/dev/null 2>&1
}

if [ -z "${PORTCULLIS_PYTHON:-}" ]; then
    echo "libinjection-python: no PORTCULLIS_PYTHON (30-python-clients.sh failed)" >&2
    return 1
fi
if ! libinjection_ok "$PORTCULLIS_PYTHON"; then
    if ! command -v cc >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev) >/dev/null || true
    fi
    echo "installing libinjection-python into $PORTCULLIS_PYTHON"
    "$PORTCULLIS_PYTHON" -m pip install -q --disable-pip-version-check "libinjection-python==1.1.6" >/dev/null || true
fi
if libinjection_ok "$PORTCULLIS_PYTHON"; then
    export PORTCULLIS_LIBINJECTION_PYTHON="$PORTCULLIS_PYTHON"
    echo "PORTCULLIS_LIBINJECTION_PYTHON=$PORTCULLIS_LIBINJECTION_PYTHON"
else
    echo "libinjection-python could not be installed" >&2
    return 1
fi
