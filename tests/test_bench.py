"""`python -m mim_jax.bench` on tiny MAE, VideoMAE, SimMIM and Audio-MAE models: one
well-formed JSON line, the hand-computed FLOP count, no recompilation after the warm-up."""

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mim_jax import bench
from tests.runs import ROOT, env
from tests.test_flops import HAND, TINY

FIELDS = {
    "method", "batch", "steps", "warmup", "step_time_s", "step_time_min_s", "samples_per_s",
    "analytic_gflop_per_sample", "analytic_tflop_per_step", "model_tflops", "mfu",
    "peak_tflops_per_device", "peak_source", "xla_tflop_per_step", "peak_memory_gib",
    "device_kind", "devices", "jax", "dtype", "attention", "attention_resolved", "remat",
    "params", "final_loss", "compiles_warmup", "compiles_after_warmup", "host_transfers",
}  # fmt: skip


def run_bench(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mim_jax.bench", *flags],
        cwd=ROOT,
        env=env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _flag(key: str, value) -> str:
    if isinstance(value, tuple):
        value = "(" + ",".join(map(str, value)) + ")"
    return f"--config.{key}={value}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_bench_prints_one_json_line_with_the_hand_counted_flops(name):
    module, arg, overrides = TINY[name]
    config = f"--config=configs/{module}.py" + (f":{arg}" if arg else "")
    flags = [_flag(k, v) for k, v in overrides.items()]
    out = run_bench(config, *flags, "--batch=4", "--steps=3", "--warmup=2")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    report = json.loads(lines[0])
    assert set(report) == FIELDS
    assert report["method"] == module and report["batch"] == 4 and report["steps"] == 3
    assert report["analytic_gflop_per_sample"] * 1e9 == pytest.approx(HAND[name], rel=1e-6)
    assert report["analytic_tflop_per_step"] * 1e12 == pytest.approx(4 * HAND[name], rel=1e-6)
    assert report["xla_tflop_per_step"] >= report["analytic_tflop_per_step"]
    assert report["step_time_min_s"] <= report["step_time_s"]
    assert report["samples_per_s"] == pytest.approx(4 / report["step_time_s"], rel=1e-4)
    assert report["model_tflops"] == pytest.approx(
        report["analytic_tflop_per_step"] / report["step_time_s"], rel=1e-4
    )
    assert report["compiles_warmup"] == 1 and report["compiles_after_warmup"] == 0
    assert report["host_transfers"] == 0
    assert math.isfinite(report["final_loss"]) and report["params"] > 0
    assert report["device_kind"] == "cpu" and report["jax"] == jax.__version__
    assert report["mfu"] is None and report["peak_tflops_per_device"] is None  # no CPU peak
    assert (report["dtype"], report["attention"], report["attention_resolved"]) == (
        "float32",
        "auto",
        "xla",
    )
    assert report["remat"] == "none"


def test_cudnn_off_gpu_fails_before_compiling_naming_the_key():
    out = run_bench("--config=configs/mae.py:data=synthetic", "--config.model.attention=cudnn")
    assert out.returncode != 0 and "config.model.attention='cudnn' needs an NVIDIA GPU" in (
        out.stderr
    )
    assert not out.stdout.strip()


def test_the_compile_counter_sees_recompilations():
    """A shape change recompiles and is counted by name: "compiles_after_warmup" is not
    zero by construction."""

    def train_step(x):
        return x * 2

    step = jax.jit(train_step)
    with bench.count_compiles() as compiles:
        step(jnp.ones(3))
        step(jnp.ones(3))
        assert bench.compiles_of(compiles) == 1
        step(jnp.ones(4))
    assert bench.compiles_of(compiles) == 2 and bench.compiles_of(compiles, "other") == 0


def test_the_json_line_rounds_floats_inside_the_profile_dicts():
    report = {"a": 1.23456789, "b": {"matmul": 2.0000000001}, "c": "x", "d": 3}
    assert bench.round_floats(report) == {"a": 1.23457, "b": {"matmul": 2.0}, "c": "x", "d": 3}
