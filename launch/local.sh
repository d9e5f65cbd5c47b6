#!/usr/bin/env bash
# From a fresh Debian/Ubuntu clone to a finished MAE pretraining on the embedded
# Fashion-MNIST: installs the dataset package and Python's venv (apt), the project (pip,
# into ./.venv), then trains, evaluates and writes everything to $WORKDIR.
#
#   bash launch/local.sh                                  # the default run
#   WORKDIR=/tmp/run bash launch/local.sh --config.total_epochs=2   # any flags pass through
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-workdirs/mae_fmnist}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
if [ ! -d /usr/share/datasets/fashion-mnist ] || ! python3 -c "import ensurepip" 2>/dev/null; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q dataset-fashion-mnist python3-venv python3-pip
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
exec .venv/bin/python -m mim_jax.main --config=configs/mae.py --workdir="$WORKDIR" "$@"
