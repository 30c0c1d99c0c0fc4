#!/usr/bin/env bash
# Install what the tests need (the project with its test extras in .venv, and Debian's Chromium
# for the browser tests) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./setup_venv.sh test
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"
