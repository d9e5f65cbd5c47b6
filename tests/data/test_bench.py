"""The data benchmark runs end to end (its numbers are measured, not asserted)."""

import subprocess
import sys

from tests.runs import ROOT, env


def run_bench(*flags: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mim_jax.data.bench", *flags],
        cwd=ROOT,
        env=env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_on_synthesized_jpegs():
    stdout = run_bench(
        "--config=configs/mae.py:variant=B/16,data=folder",
        "--jpeg_folder=synthesize",
        "--num_jpegs=24",
        "--batch_size=8",
        "--steps=2",
    )
    assert "synthesized 24 JPEGs" in stdout and "images/s" in stdout
    assert "images/s with 0 workers" in stdout


def test_bench_on_synthesized_videos_with_repeated_sampling():
    stdout = run_bench(
        "--config=configs/mae_st.py:variant=B/16,data=folder",
        "--video_folder=synthesize",
        "--num_videos=2",
        "--batch_size=8",
        "--steps=1",
    )
    assert "synthesized 2 H.264 videos" in stdout and "4 per video" in stdout
    assert "clips/s with 0 workers" in stdout
