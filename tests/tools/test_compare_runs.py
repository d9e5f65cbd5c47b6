"""compare_runs: a metric's curves side by side with relative differences to the first run."""

import json

import pytest

from mim_jax.tools import compare_runs


def _run(path, losses: dict[int, float], evals: dict | None = None):
    path.mkdir()
    rows = [{"step": s, "loss": v, "lr": 0.1} for s, v in losses.items()]
    rows.append({"step": max(losses), "eval/knn_top1": 0.5})  # eval lines carry no loss
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    if evals is not None:
        (path / "eval_summary.json").write_text(json.dumps({"step": 10, **evals}))
    return path


def test_the_table_shows_shared_steps_the_tail_mean_and_relative_differences(tmp_path):
    a = _run(tmp_path / "fp32", {s: 2.0 - 0.1 * s for s in range(1, 11)}, {"knn_top1": 0.8})
    b = _run(tmp_path / "bf16", {s: 2.1 - 0.1 * s for s in range(1, 12)}, {"knn_top1": 0.7})
    curves = {p.name: compare_runs.read_metric(p, "loss") for p in (a, b)}
    rows = compare_runs.table(curves, "loss", points=3)
    assert rows[0] == "| step | fp32 | bf16 | bf16 vs fp32 |"
    # Steps 1, 5 (the midpoint index 4.5 rounds to even) and 10; bf16 alone logs step 11.
    assert rows[2] == "| 1 | 1.9000 | 2.0000 | +5.26% |"
    assert rows[3] == "| 5 | 1.5000 | 1.6000 | +6.67% |"
    assert rows[4] == "| 10 | 1.0000 | 1.1000 | +10.00% |"
    assert rows[5] == "| mean of steps 10-10 | 1.0000 | 1.1000 | +10.00% |"
    assert compare_runs.final_evals([str(a), str(b)])[2] == "| knn_top1 | 0.8 | 0.7 |"


def test_a_missing_metric_names_the_file(tmp_path):
    run = _run(tmp_path / "r", {1: 1.0})
    with pytest.raises(ValueError, match=r"metrics.jsonl: no logged 'grad_norm'"):
        compare_runs.read_metric(run, "grad_norm")
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        compare_runs.read_metric(tmp_path, "loss")
