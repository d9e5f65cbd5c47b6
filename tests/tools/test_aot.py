"""The TPU ahead-of-time compile tool: a tiny MAE's real train step compiled by libtpu for a
2x2 v5e slice, on this CPU host."""

import json
import subprocess
import sys

import pytest

from tests import runs

pytest.importorskip("libtpu", reason="the [tpu] extra (libtpu) is not installed")


def _aot(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mim_jax.tools.aot", *flags],
        cwd=runs.ROOT,
        env=runs.env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compiles_a_tiny_fsdp_step_for_a_v5e_slice_and_reports_per_chip_memory():
    out = _aot(
        "--config=configs/mae.py:data=synthetic",
        "--config.batch_size=64",
        "--config.mesh.fsdp=2",
        "--config.mesh.fsdp_min_size=0",  # shard every param with an even dimension
        "--topology=v5e:2x2",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["device_kind"] == "TPU v5 lite" and report["chips"] == 4
    assert report["mesh"] == {"data": 2, "fsdp": 2}
    assert report["dtype"] == "bfloat16" and report["hbm_gib"] == 16.0
    # Arguments per chip: half of the fp32 params + Adam's two moments (FSDP over 2), plus
    # a quarter of the uint8 batch and a few replicated scalars.
    state = 12 * report["params"]
    batch = 64 * 28 * 28 // 4
    got = report["argument_gib"] * 2**30
    assert 0.45 * state + batch < got < 0.55 * state + batch + 2**16, (got, state)
    assert report["alias_gib"] > 0  # the donated state is updated in place
    assert report["peak_gib"] >= report["argument_gib"] and report["tflop_per_chip_step"] > 0


def test_an_unknown_topology_is_named_in_the_error():
    out = _aot("--config=configs/mae.py:data=synthetic", "--topology=v5e-bogus")
    assert out.returncode != 0
    assert "--topology='v5e-bogus'" in out.stderr
