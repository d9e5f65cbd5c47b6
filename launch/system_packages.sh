#!/usr/bin/env bash
# The Debian/Ubuntu packages mim_jax uses, installed when missing (with sudo unless root):
#   dataset-fashion-mnist  the embedded image (and moving-video) default dataset
#   espeak-ng              synthesises the embedded spoken-keywords audio dataset
#   python3-venv/-pip      the project's virtual environment
set -euo pipefail
missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${missing[@]}"
fi
