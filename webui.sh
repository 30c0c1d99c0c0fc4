#!/usr/bin/env bash
# Launch the web UI: sets up .venv on the first run, then starts app.py with the given flags.
# Any --ray-* flag adds the optional Ray Serve extra (.[ray]) to the install.
set -euo pipefail
cd "$(dirname "$0")"
extra=""
for arg in "$@"; do
    case "$arg" in --ray-*) extra=ray ;; esac
done
./setup_venv.sh ${extra:+"$extra"}
exec .venv/bin/python app.py "$@"
