#!/usr/bin/env bash
# Create (or reuse) .venv with everything needed to run and test camera_caption
# without a ROS 2 install: PyPI ROS 2 wheels, torch, transformers, test tools.
#   VENV=path      where the venv lives (default: <repo>/.venv)
#   PYTHON=python3.11  interpreter to build it with (3.10-3.13)
#   TORCH_REQUIREMENT='torch==2.14.1 torchvision==0.29.1'  which torch and torchvision
#                      to install: always a matching pair, in one pip command
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
stamp=$venv/.camera_caption-requirements
want=$(cat "$repo"/requirements*.txt; echo "${TORCH_REQUIREMENT:-torch==2.14.1 torchvision==0.29.1}")
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
# torch and torchvision first, pinned and together (torchvision is built
# against one torch: a mismatched pair fails with 'torchvision::nms does not
# exist'), so that nothing below pulls another build.
# shellcheck disable=SC2086  # the requirement is a list of words
"${pip[@]}" ${TORCH_REQUIREMENT:-torch==2.14.1 torchvision==0.29.1}
"${pip[@]}" -r "$repo/requirements.txt" -r "$repo/requirements-ros.txt" \
  -r "$repo/requirements-test.txt"
printf '%s' "$want" > "$stamp"
