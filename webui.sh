#!/usr/bin/env bash
# Launch the web UI: sets up .venv on the first run, then starts app.py with the given flags.
set -euo pipefail
cd "$(dirname "$0")"
./setup_venv.sh
exec .venv/bin/python app.py "$@"
