#!/usr/bin/env bash
# Run camera -> captioner -> /caption -> logger in one process, without a ROS 2
# install. Options mirror the launch arguments: scripts/run.sh --help
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup_venv.sh"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
cd "$repo"
exec "${VENV:-$repo/.venv}/bin/python" -m camera_caption "$@"
