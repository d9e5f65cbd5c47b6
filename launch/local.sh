#!/usr/bin/env bash
# From a fresh Debian/Ubuntu clone to a finished MAE pretraining on the embedded
# Fashion-MNIST: installs the Debian packages (launch/system_packages.sh), the project
# (pip, into ./.venv), then trains, evaluates and writes everything to $WORKDIR.
#
#   bash launch/local.sh                                  # the default run
#   WORKDIR=/tmp/run bash launch/local.sh --config.total_epochs=2   # any flags pass through
#   CONFIG=configs/audiomae.py WORKDIR=workdirs/audiomae bash launch/local.sh   # another config
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/mae.py}
WORKDIR=${WORKDIR:-workdirs/mae_fmnist}

bash launch/system_packages.sh

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
exec .venv/bin/python -m mim_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
