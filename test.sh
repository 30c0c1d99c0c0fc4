#!/usr/bin/env bash
# Install what the tests need (the project with its test extras in .venv, and Debian's Chromium with a
# colour emoji font for the browser tests), check lint, formatting and types, and run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./setup_venv.sh test
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ ! -x /usr/bin/chromium ] || [ ! -f "$EMOJI_FONT" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's chromium and colour emoji font for the browser tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
    else
        echo "Browser tests need Debian's chromium and emoji font:" \
            "sudo apt-get install chromium fonts-noto-color-emoji" >&2
    fi
fi
# Lint, formatting and the type check first (the versions pinned in pyproject.toml's test extra): any finding fails.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Python keeps its compiled modules (in __pycache__ folders, which git ignores) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE): the tests start many Python processes (the workers, app.py, Ray's replicas, install.py
# runs), and each would compile the project's modules and rewrite the test files' asserts again.
unset PYTHONDONTWRITEBYTECODE
# Three workers (pytest-xdist) on CI's two cores, since the tests also wait (on servers, browsers, Ray); each test
# module is kept in one worker, in the order tests/conftest.py gives them.
exec .venv/bin/python -m pytest -n 3 --dist loadgroup --no-loadscope-reorder "$@"
