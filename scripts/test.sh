#!/usr/bin/env bash
# Build with colcon and run every test with colcon test (pytest), no ROS distro,
# GPU or network needed. Extra arguments go to pytest (e.g. -k pipeline).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup_venv.sh"
venv=${VENV:-$repo/.venv}
# shellcheck disable=SC1091
source "$venv/bin/activate"
# Keep DDS on this host: Iron and later read ROS_AUTOMATIC_DISCOVERY_RANGE,
# Humble reads ROS_LOCALHOST_ONLY.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if [ "${ROS_DISTRO:-}" = humble ]; then export ROS_LOCALHOST_ONLY=1; fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

# The real ros2 command line, for the tests that run the launch file and the
# README's ros2 commands: a ROS 2 install (ros2 on PATH) or
# CAMERA_CAPTION_ROS2_SETUP (a script to source); else, where the ros2 sources
# lie beside this checkout (../shared), built once into .ros2cli (~2 min).
# Without any of these those tests skip and say why (CI fails instead).
builder=$repo/../shared/tools/build_ros2cli.sh
if [ -z "${CAMERA_CAPTION_ROS2_SETUP:-}" ] && ! command -v ros2 >/dev/null 2>&1 \
    && [ -f "$builder" ]; then
  cli=${ROS2CLI_DIR:-$repo/.ros2cli}
  want=$(cat "$builder" "$repo"/../shared/ros2src/COMMITS 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "$cli/activate.sh" ] || [ "$(cat "$cli/.camera_caption-stamp" 2>/dev/null)" != "$want" ]; then
    echo "building the real ros2 CLI into $cli (once, ~2 min)" >&2
    cli_log=$(mktemp)
    if ! bash "$builder" "$cli" > "$cli_log" 2>&1; then
      tail -30 "$cli_log" >&2
      echo "building the ros2 CLI failed (log: $cli_log)" >&2
      exit 1
    fi
    echo "$want" > "$cli/.camera_caption-stamp"
  fi
  export CAMERA_CAPTION_ROS2_SETUP=$cli/activate.sh
fi

# The package must compile on every Python our users run (Humble 3.10 .. Jazzy 3.12).
find_python() {  # a working interpreter for version $1, or nothing
  local root
  if "python$1" -c '' >/dev/null 2>&1; then echo "python$1"; return; fi
  root=$(pyenv root 2>/dev/null) || return 0
  for exe in "$root"/versions/"$1".*/bin/"python$1"; do
    if [ -x "$exe" ]; then echo "$exe"; return; fi
  done
}
for version in 3.10 3.12; do
  py=$(find_python "$version")
  if [ -n "$py" ]; then
    "$py" - "$repo" <<'PY'
import pathlib, sys
root = pathlib.Path(sys.argv[1])
files = sorted(root.glob('camera_caption/**/*.py')) + sorted(root.glob('test/*.py')) \
    + sorted(root.glob('launch/*.py')) + [root / 'setup.py']
for f in files:
    compile(f.read_text(), str(f), 'exec')
print(f'compile check: {len(files)} files OK on Python {sys.version.split()[0]}')
PY
  else
    echo "compile check: no Python $version here, not checked"
  fi
done

work=${COLCON_WORK_DIR:-$(mktemp -d)}
cd "$work"
colcon --log-base log build --base-paths "$repo" --build-base build \
  --install-base install --event-handlers console_cohesion+
status=0
colcon --log-base log test --base-paths "$repo" --build-base build \
  --install-base install --event-handlers console_direct+ \
  --pytest-args -p no:cacheprovider "$@" || status=$?
colcon test-result --test-result-base build --verbose || status=$?
exit $status
