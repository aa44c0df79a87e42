# Sourced by scripts/test.sh: Debian's Chromium and its WebDriver
# (chromedriver), for the console's browser test (examples/airline-loyalty
# tests/console_browser.rs).
#
# Installs the `chromium` and `chromium-driver` packages when chromedriver is
# missing (one `apt-get update` first). Exports CHROMEDRIVER (the driver) and
# CHROMIUM (the browser it drives).
chromedriver_path() {
    command -v chromedriver 2>/dev/null \
        || { [ -x /usr/bin/chromedriver ] && echo /usr/bin/chromedriver; }
}

if [ -z "$(chromedriver_path)" ]; then
    echo "installing chromium and chromium-driver"
    (apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
        || echo "apt-get could not install chromium and chromium-driver" >&2
fi
CHROMEDRIVER="$(chromedriver_path || true)"
CHROMIUM="$(command -v chromium 2>/dev/null || true)"
if [ -n "$CHROMEDRIVER" ] && [ -n "$CHROMIUM" ]; then
    export CHROMEDRIVER CHROMIUM
    echo "CHROMEDRIVER=$CHROMEDRIVER CHROMIUM=$CHROMIUM"
else
    echo "chromium and chromium-driver could not be installed" >&2
    return 1
fi
