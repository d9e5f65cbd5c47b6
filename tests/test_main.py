"""The command line, as users run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run_main(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "mim_jax.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_synthetic_run_end_to_end(tmp_path):
    relative = os.path.relpath(tmp_path, ROOT)  # a relative workdir, as in the README
    out = run_main(
        "--config=configs/mae.py:data=synthetic",
        f"--workdir={relative}",
        "--config.total_steps=3",
        "--config.log_every_steps=1",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert (tmp_path / "checkpoints" / "3" / "state").is_dir()
    assert "Traceback" not in out.stderr
    assert "step 3/3" in out.stderr  # progress lines when not attached to a terminal
    assert "CheckpointManager created" not in out.stderr  # library INFO chatter is filtered


def test_config_file_path_works_from_another_directory(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mim_jax.main",
            f"--config={ROOT}/configs/mae.py:varaint=B/16",
            f"--workdir={tmp_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "Did you mean 'variant'" in out.stderr


@pytest.mark.slow
def test_vit_b16_recipe_builds_and_trains_on_cpu(tmp_path):
    """The ImageNet-size MAE-B/16 (111.9M params) takes two steps on random 224px images."""
    out = run_main(
        "--config=configs/mae.py:variant=B/16,data=synthetic",
        f"--workdir={tmp_path}",
        "--config.total_steps=2",
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "111,655,680 params" in out.stderr
    assert (tmp_path / "checkpoints" / "2").is_dir()
