"""Compare the logged curves of training runs side by side (e.g. bf16 vs float32, two
attention kernels, two seeds): a markdown table of one metric at evenly spaced logged
steps, the mean over the last tenth of the run, and the final evaluation metrics, each
with its relative difference to the first run.

    python -m mim_jax.tools.compare_runs --runs=workdirs/fp32,workdirs/bf16 --metric=loss
"""

import json
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags


def read_metric(workdir: str | Path, metric: str) -> dict[int, float]:
    """step -> value of `metric` from a run's metrics.jsonl (a step logged twice, after a
    resume, keeps its last value)."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics.jsonl (is {workdir} a training workdir?)")
    values = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if metric in row:
            values[int(row["step"])] = float(row[metric])
    if not values:
        raise ValueError(f"{path}: no logged {metric!r}")
    return values


def _rel(value: float, ref: float) -> str:
    return f"{100 * (value - ref) / abs(ref):+.2f}%" if ref else "n/a"


def table(curves: dict[str, dict[int, float]], metric: str, points: int = 8) -> list[str]:
    """Markdown rows: `metric` at `points` evenly spaced steps logged by every run, then
    the mean over the last tenth of those steps."""
    names = list(curves)
    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    if not steps:
        raise ValueError(f"the runs share no logged step of {metric!r}")
    picks = sorted({steps[round(i * (len(steps) - 1) / max(points - 1, 1))] for i in range(points)})
    head = ["step", *names, *(f"{n} vs {names[0]}" for n in names[1:])]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, values: list[float]) -> str:
        cells = [label, *(f"{v:.4f}" for v in values), *(_rel(v, values[0]) for v in values[1:])]
        return "| " + " | ".join(cells) + " |"

    for s in picks:
        rows.append(row(str(s), [curves[n][s] for n in names]))
    tail = steps[-max(1, len(steps) // 10) :]
    means = [sum(curves[n][s] for s in tail) / len(tail) for n in names]
    rows.append(row(f"mean of steps {tail[0]}-{tail[-1]}", means))
    return rows


def final_evals(runs: Sequence[str]) -> list[str]:
    """Markdown rows of the numeric final metrics in each run's eval_summary.json."""
    summaries = []
    for run in runs:
        path = Path(run) / "eval_summary.json"
        summaries.append(json.loads(path.read_text()) if path.exists() else {})
    keys = [
        k
        for k, v in summaries[0].items()
        if isinstance(v, int | float) and k != "step" and all(k in s for s in summaries[1:])
    ]
    if not keys:
        return []
    names = [Path(r).name for r in runs]
    rows = ["| final eval | " + " | ".join(names) + " |", "|" + "---|" * (len(runs) + 1)]
    rows += [f"| {k} | " + " | ".join(f"{s[k]:.4g}" for s in summaries) + " |" for k in keys]
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    runs = [r for r in f.runs.split(",") if r]
    if len(runs) < 2:
        raise app.UsageError(f"--runs needs two or more workdirs, got {f.runs!r}")
    curves = {Path(r).name: read_metric(r, f.metric) for r in runs}
    if len(curves) != len(runs):
        raise app.UsageError(f"--runs must end in distinct folder names, got {f.runs!r}")
    print("\n".join(table(curves, f.metric, f.points)))
    evals = final_evals(runs)
    if evals:
        print("\n" + "\n".join(evals))


if __name__ == "__main__":
    flags.DEFINE_string(
        "runs", None, "Comma-separated training workdirs (the first is the reference)."
    )
    flags.DEFINE_string("metric", "loss", "A metric logged in metrics.jsonl.")
    flags.DEFINE_integer("points", 8, "How many logged steps to show.")
    flags.mark_flags_as_required(["runs"])
    app.run(main)
