#!/usr/bin/env bash
# One-command GPU proof of the fast path; see scripts/gpu_check.py and README (Speed).
#   bash scripts/gpu_check.sh [OUT.json] [--cpu-smoke]
# OUT defaults to $OUT/gpu_check.json (the device machine's $OUT), else ./gpu_check.json.
# Uses this machine's torch and transformers. rclpy (for the node part): the one this
# Python imports, else the ROS 2 Kilted wheels carried in .whl/ (requirements-ros.txt,
# downloaded for cp312 as the README says), installed offline into a venv that sees the
# system site-packages. Stops itself after GPU_CHECK_TIMEOUT_S (default 470) seconds.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
if [ -z "$out" ] || [ "${out#--}" != "$out" ]; then
  out=${OUT:-.}/gpu_check.json
else
  shift
fi
py=${PYTHON:-python3}
if ! "$py" -c 'import rclpy' >/dev/null 2>&1; then
  venv=${GPU_CHECK_VENV:-/tmp/gpu_check_venv}
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import rclpy' >/dev/null 2>&1; then
    if ! ls "$repo"/.whl/*.whl >/dev/null 2>&1; then
      echo "gpu_check: rclpy is not importable and $repo/.whl has no wheels;" \
           "the node part will fail (see README, Speed)" >&2
    else
      echo "gpu_check: installing the ROS 2 wheels from .whl into $venv (offline)"
      rm -rf "$venv"
      if "$py" -m venv --system-site-packages "$venv" 2>/dev/null; then
        "$venv/bin/python" -m pip install -q --no-index --no-deps "$repo"/.whl/*.whl
      else  # no ensurepip: a venv without pip, filled by this Python's pip
        "$py" -m venv --without-pip --system-site-packages "$venv" &&
          "$py" -m pip --python "$venv/bin/python" install -q --no-index --no-deps \
            "$repo"/.whl/*.whl
      fi
    fi
  fi
  if [ -x "$venv/bin/python" ]; then py=$venv/bin/python; fi
fi
echo "gpu_check: $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT_S:-470}" \
  "$py" "$repo/scripts/gpu_check.py" "$out" "$@"
status=$?
echo "gpu_check: exit $status, report in $out"
exit $status
