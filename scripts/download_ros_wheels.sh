#!/usr/bin/env bash
# Download the ROS 2 Kilted wheels the captioner needs (requirements-ros-wheels.txt,
# about 44 MB) for another Python into .whl/, e.g. for the GPU machine (Python 3.12,
# no network), which scripts/gpu_check.sh installs them on:
#   bash scripts/download_ros_wheels.sh [PYTHON_VERSION]     # default 3.12
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=${1:-3.12}
mkdir -p "$repo/.whl"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$version" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  -r "$repo/requirements-ros-wheels.txt" -d "$repo/.whl"
du -sh "$repo/.whl"
