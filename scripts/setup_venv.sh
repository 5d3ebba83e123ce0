#!/usr/bin/env bash
# Create (or reuse) .venv with everything needed to run and test camera_caption
# without a ROS 2 install: PyPI ROS 2 wheels, torch, transformers, test tools.
#   VENV=path      where the venv lives (default: <repo>/.venv)
#   PYTHON=python3.11  interpreter to build it with (3.10-3.13)
#   TORCH_REQUIREMENT='torch==2.13.0'  which torch to install
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
stamp=$venv/.camera_caption-requirements
want=$(cat "$repo"/requirements*.txt; echo "${TORCH_REQUIREMENT:-torch==2.13.0}")
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.10 python3.13 python3; do
    if "$candidate" -c '' >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
echo "setting up $venv with $($python --version 2>&1)" >&2
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# torch first and pinned, so that nothing below pulls another build.
"${pip[@]}" "${TORCH_REQUIREMENT:-torch==2.13.0}"
"${pip[@]}" -r "$repo/requirements.txt" -r "$repo/requirements-ros.txt" \
  -r "$repo/requirements-test.txt"
printf '%s' "$want" > "$stamp"
