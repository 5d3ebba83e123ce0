#!/usr/bin/env bash
# Run camera -> captioner -> /caption -> logger in one process, without a ROS 2
# install. Options mirror the launch arguments: scripts/run.sh --help
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup_venv.sh"
# Keep DDS on this host: Iron and later read ROS_AUTOMATIC_DISCOVERY_RANGE,
# Humble reads ROS_LOCALHOST_ONLY.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [ "${ROS_DISTRO:-}" = humble ]; then export ROS_LOCALHOST_ONLY=${ROS_LOCALHOST_ONLY:-1}; fi
cd "$repo"
exec "${VENV:-$repo/.venv}/bin/python" -m camera_caption "$@"
