#!/usr/bin/env bash
# The training-step benchmark rows of docs/performance.md on one GPU (H100 targets): one
# JSON line per row, appended to $1 (default bench_gpu.jsonl), then a profile of the MAE-B
# step written to $2 (default profile_mae_b; its by-op summary goes to stderr and
# profile_summary.json). A row that fails (e.g. out of memory) is reported and the next runs.
#
#   bash launch/bench_gpu.sh results.jsonl profile_dir
set -uo pipefail
out="${1:-bench_gpu.jsonl}"
profile="${2:-profile_mae_b}"
py="${PYTHON:-python}"
steps="${STEPS:-50}"
failed=0

bench() {
  if ! "$py" -m mim_jax.bench --steps="$steps" --warmup=5 --json_out="$out" "$@"; then
    echo "bench_gpu.sh: row failed: $*" >&2
    failed=1
  fi
}

mae_b="--config=configs/mae.py:variant=B/16,data=synthetic"
bench "$mae_b" --batch=256                                   # target 5,100 img/s
bench "$mae_b" --batch=256 --config.model.attention=xla      # XLA attention, for comparison
bench --config=configs/mae.py:variant=L/16,data=synthetic --batch=256       # 2,900 img/s
bench --config=configs/videomae.py:variant=B/16,data=synthetic --batch=32   # 1,500 clips/s
bench "$mae_b" --batch=256 --steps=5 --profile_dir="$profile" --profile_steps=5
exit "$failed"
