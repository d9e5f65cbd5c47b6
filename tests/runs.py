"""Helpers for tests that run the trainer as users do: `python -m mim_jax.main` in a
subprocess (so it can be killed), on a tiny MAE over synthetic images."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

ROOT = Path(__file__).parents[1]

TINY = (
    "--config=configs/mae.py:data=synthetic",
    "--config.batch_size=32",
    "--config.model.width=64",
    "--config.model.depth=2",
    "--config.model.num_heads=2",
    "--config.model.decoder_width=32",
    "--config.model.decoder_depth=1",
    "--config.model.decoder_heads=2",
    "--config.log_every_steps=1",
    "--config.eval.at_end=False",
    "--config.optim.warmup_steps=5",
    "--config.optim.base_lr=2e-3",
)


def env(devices: int = 1, **extra: str) -> dict:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out.update(extra)
    return out


def start(workdir: Path, *flags: str, devices: int = 1, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mim_jax.main", *TINY, f"--workdir={workdir}", *flags],
        cwd=ROOT,
        env=env(devices, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(workdir: Path, *flags: str, devices: int = 1, timeout: float = 300, **extra_env):
    """Runs to completion; returns the CompletedProcess-like (returncode, stdout, stderr)."""
    proc = start(workdir, *flags, devices=devices, **extra_env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_main(*args: str, timeout: float = 300, extra_env: dict | None = None, devices: int = 1):
    """`python -m mim_jax.main ARGS` (no tiny-config flags), e.g. for `--mode=export`."""
    return subprocess.run(
        [sys.executable, "-m", "mim_jax.main", *args],
        cwd=ROOT,
        env=env(devices, **(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def logged_steps(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(x) for x in lines if x.endswith("}")]  # the last line may be partial


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300, poll: float = 0.002):
    """Polls `predicate()` until true; fails if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) first:\n{proc.stderr.read()}")
        time.sleep(poll)
    raise AssertionError("timed out")


def kill(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    proc.send_signal(sig)
    proc.communicate(timeout=120)


def losses(workdir: Path) -> dict[int, float]:
    """step -> loss; a step logged twice (rerun after a restart) keeps its last value."""
    return {m["step"]: m["loss"] for m in logged_steps(workdir) if "loss" in m}


def checkpoint_steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def saved_params(workdir: Path, step: int | None = None):
    step = max(checkpoint_steps(workdir)) if step is None else step
    state = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")
    return state["params"]


def assert_trees_equal(a, b) -> None:
    import jax

    jax.tree.map(np.testing.assert_array_equal, a, b)
