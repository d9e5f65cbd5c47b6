#!/usr/bin/env bash
# Train on a Cloud TPU VM pod: every worker runs the same command with --distributed and
# the same gs:// workdir; a restart with that workdir resumes from its last checkpoint.
#
#   export ZONE=us-west4-a ACCELERATOR=v5litepod-16 WORKDIR=gs://my-bucket/mae_b16
#   export CONFIG=configs/mae.py:variant=B/16
#   bash launch/tpu_pod.sh create             # queued resource (SPOT=1: spot capacity)
#   bash launch/tpu_pod.sh install            # this checkout (git archive HEAD) -> workers
#   bash launch/tpu_pod.sh train [-- --config.total_epochs=400]   # extra flags pass through
#   bash launch/tpu_pod.sh logs               # tail worker 0's log
#   bash launch/tpu_pod.sh resume             # until done: recreate if preempted, retrain
#   bash launch/tpu_pod.sh delete
#   bash launch/tpu_pod.sh --dry_run train    # print the gcloud commands instead
#
# Settings (environment): ZONE (required), PROJECT, TPU_NAME (mim-jax), ACCELERATOR
# (v5litepod-16), RUNTIME (v2-alpha-tpuv5-lite), SPOT (0), CONFIG (configs/mae.py),
# WORKDIR (gs://..., required by train/resume), REPO (a git URL to clone instead of
# copying this checkout), MAX_ATTEMPTS (resume: 10), POLL_SECONDS (60). docs/launch.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

DRY_RUN=0
if [[ ${1:-} == --dry_run ]]; then DRY_RUN=1; shift; fi
COMMAND=${1:-}
shift || true
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")  # training flags passed through to mim_jax.main

TPU_NAME=${TPU_NAME:-mim-jax}
ACCELERATOR=${ACCELERATOR:-v5litepod-16}
RUNTIME=${RUNTIME:-v2-alpha-tpuv5-lite}
SPOT=${SPOT:-0}
CONFIG=${CONFIG:-configs/mae.py}
WORKDIR=${WORKDIR:-}
REPO=${REPO:-}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-10}
POLL_SECONDS=${POLL_SECONDS:-60}
LOG=mim_jax_train.log  # in each worker's home directory

die() { echo "tpu_pod.sh: $*" >&2; exit 1; }

quote() {  # one word for a shell: as is when safe, else in single quotes
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%~-]+$ ]]; then printf %s "$1"
  else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

quote_all() { local w out=(); for w in "$@"; do out+=("$(quote "$w")"); done; echo "${out[*]}"; }

run() {  # runs a command, or with --dry_run prints it (shell-quoted, one per line)
  if ((DRY_RUN)); then quote_all "$@"; else "$@"; fi
}

[[ -n ${ZONE:-} ]] || die "set ZONE (e.g. ZONE=us-west4-a)"
LOCATION=(--zone="$ZONE")
[[ -n ${PROJECT:-} ]] && LOCATION+=(--project="$PROJECT")

ssh_all() {  # the same shell command on every worker of the pod
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${LOCATION[@]}" --worker=all --command="$1"
}

need_gs_workdir() {
  [[ $WORKDIR == gs://* ]] || die "WORKDIR must be a gs:// path that every worker can \
reach (got '${WORKDIR}'); e.g. WORKDIR=gs://my-bucket/mae_b16"
}

node_state() {  # READY, PREEMPTED, CREATING, ... or NOT_FOUND
  gcloud compute tpus tpu-vm describe "$TPU_NAME" "${LOCATION[@]}" --format='value(state)' \
    2>/dev/null || echo NOT_FOUND
}

create() {
  local capacity=()
  ((SPOT)) && capacity=(--spot)
  run gcloud compute tpus queued-resources create "$TPU_NAME" "${LOCATION[@]}" \
    --node-id="$TPU_NAME" --accelerator-type="$ACCELERATOR" --runtime-version="$RUNTIME" \
    "${capacity[@]}"
  if ((DRY_RUN)); then return; fi
  echo "Waiting for $TPU_NAME to be READY (queued resources can wait for capacity)..."
  local queued
  until [[ $(node_state) == READY ]]; do
    queued=$(gcloud compute tpus queued-resources describe "$TPU_NAME" "${LOCATION[@]}" \
      --format='value(state.state)' 2>/dev/null || echo UNKNOWN)
    [[ $queued == FAILED || $queued == SUSPENDED ]] && die "queued resource $TPU_NAME is $queued"
    sleep "$POLL_SECONDS"
  done
}

install() {
  if [[ -n $REPO ]]; then
    ssh_all "rm -rf ~/mim_jax && git clone --depth=1 $(quote "$REPO") ~/mim_jax"
  else
    local archive=/tmp/mim_jax_src.tar.gz
    run git -C "$ROOT" archive --format=tar.gz -o "$archive" HEAD
    run gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:~/mim_jax_src.tar.gz" \
      "${LOCATION[@]}" --worker=all
    ssh_all "rm -rf ~/mim_jax && mkdir ~/mim_jax && tar -xzf ~/mim_jax_src.tar.gz -C ~/mim_jax"
  fi
  # Debian packages only matter for the embedded datasets; the venv gets jax[tpu].
  ssh_all "cd ~/mim_jax && bash launch/system_packages.sh && python3 -m venv .venv \
&& .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[tpu]'"
}

train_command() {  # the command each worker runs (flags quoted for the remote shell)
  echo "cd ~/mim_jax && $(quote_all .venv/bin/python -m mim_jax.main --distributed \
    --config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}")"
}

case $COMMAND in
  create) create ;;
  install) install ;;
  train)  # in the background on every worker: the ssh session may end
    need_gs_workdir
    ssh_all "nohup bash -c $(quote "$(train_command)") > ~/$LOG 2>&1 &"
    ;;
  logs) run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${LOCATION[@]}" --worker=0 \
    --command="tail -n 100 -f ~/$LOG" ;;
  status) node_state ;;
  resume)  # a retry loop: the run resumes from WORKDIR's latest checkpoint each time
    need_gs_workdir
    for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
      if ((DRY_RUN)); then state=READY; else state=$(node_state); fi
      echo "Attempt $attempt of $MAX_ATTEMPTS: $TPU_NAME is $state" >&2
      if [[ $state != READY ]]; then
        if [[ $state != NOT_FOUND ]]; then
          run gcloud compute tpus queued-resources delete "$TPU_NAME" "${LOCATION[@]}" \
            --force --quiet || true
        fi
        # Separate processes, so that `set -e` stops each at its first failure.
        if ! { bash "$0" create && bash "$0" install; }; then sleep "$POLL_SECONDS"; continue; fi
      fi
      # In the foreground: returns when every worker's training has exited.
      if ssh_all "$(train_command) 2>&1 | tee -a ~/$LOG"; then
        echo "Training finished (attempt $attempt)." >&2
        exit 0
      fi
      ((DRY_RUN)) && exit 0
      sleep "$POLL_SECONDS"
    done
    die "gave up after $MAX_ATTEMPTS attempts; the checkpoints are in $WORKDIR"
    ;;
  delete) run gcloud compute tpus queued-resources delete "$TPU_NAME" "${LOCATION[@]}" \
    --force --quiet ;;
  *) die "usage: tpu_pod.sh [--dry_run] create|install|train|logs|status|resume|delete \
[-- training flags]" ;;
esac
