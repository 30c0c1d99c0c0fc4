#!/usr/bin/env bash
# Create .venv in the repository root and install the project into it; reuse it when it is current.
# Usage: ./setup_venv.sh [extra]   ("test" adds the test dependencies, Ray included; "ray" adds Ray Serve alone)
# The test install takes the versions the suite passed with (requirements-lock.txt, as pip constraints); the
# others take the newest that pyproject.toml allows.
set -euo pipefail
cd "$(dirname "$0")"
extra="${1:-}"
python="${PYTHON:-python3}"
stamp=".venv/.installed${extra:+-$extra}"
want="$(cat pyproject.toml requirements-lock.txt | sha256sum | cut -d' ' -f1)"
lock=()
if [ "$extra" = test ]; then lock=(-c requirements-lock.txt); fi
case "$extra" in  # the installs that already hold this one: the test extra includes ray (see pyproject.toml)
    "") covered=(".venv/.installed" ".venv/.installed-ray" ".venv/.installed-test") ;;
    ray) covered=(".venv/.installed-ray" ".venv/.installed-test") ;;
    *) covered=("$stamp") ;;
esac

current() {  # is one of the covering installs made from this pyproject.toml and lock file?
    local other
    for other in "${covered[@]}"; do
        [ "$(cat "$other" 2>/dev/null)" = "$want" ] && return 0
    done
    return 1
}

if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv"
    "$python" -m venv .venv
fi
if ! current; then
    echo "Installing the project${extra:+ with [$extra]} into .venv (the first time takes a while)"
    .venv/bin/python -m pip install --disable-pip-version-check "${lock[@]}" -e ".${extra:+[$extra]}"
    if [ "$extra" = test ]; then  # the test oracle, without its training requirements (see pyproject.toml)
        oracle="$(.venv/bin/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["oracle"])')"
        .venv/bin/python -m pip install --disable-pip-version-check "${lock[@]}" --no-deps $oracle
    fi
    echo "$want" > "$stamp"
fi
