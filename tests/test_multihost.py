"""Multi-process training: two JAX processes on 127.0.0.1 (2 CPU devices each) train the
same run as one process with 4 devices, and agree on their checkpoints."""

import socket

import jax
import numpy as np
import pytest
from absl import app
from etils import epath

from mim_jax import checkpoint, main
from tests import runs

STEPS = ("--config.total_steps=6", "--config.ckpt.every_steps=3", "--config.mesh.fsdp=2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one_process_with_as_many_devices(tmp_path):
    one = runs.run(tmp_path / "one", *STEPS, devices=4)
    assert one.returncode == 0, one.stderr[-3000:]

    port, two = _free_port(), tmp_path / "two"
    procs = [
        runs.start(
            two,
            *STEPS,
            f"--coordinator=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
            devices=2,
        )
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert "Process 1 of 2: 2 local / 4 global devices" in errs[1]
    assert "Training from step 0" in errs[0] and "Training from step" not in errs[1]

    expected, got = runs.losses(tmp_path / "one"), runs.losses(two)
    assert sorted(got) == sorted(expected) == list(range(1, 7))
    np.testing.assert_allclose([got[s] for s in got], [expected[s] for s in got], rtol=1e-5)
    # Both processes wrote their halves of the same steps; the params match the 1-process
    # run up to reduction order (Adam amplifies rounding in near-zero gradients, so the
    # check is per tensor, relative to its norm).
    assert runs.checkpoint_steps(two) == runs.checkpoint_steps(tmp_path / "one") == [3, 6]
    a, b = (
        checkpoint.read_params(epath.Path(w) / "checkpoints" / "6") for w in (tmp_path / "one", two)
    )
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.linalg.norm(x - y) <= 1e-2 * np.linalg.norm(x) + 1e-7


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ((None, None, None), {}, {}),
        (
            ("10.0.0.1:1234", 4, 3),
            {},
            dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3),
        ),
        (
            (None, None, None),
            {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"},
            dict(coordinator_address="h:1", num_processes=2, process_id=0),
        ),
    ],
)
def test_distributed_args_from_flags_or_environment(flags, env, expected):
    assert main.distributed_args(*flags, env=env) == expected


@pytest.mark.parametrize(
    "flags, match",
    [(("h:1", 2, None), r"missing \['process_id'\]"), (("h:1", 2, 2), r"must be in \[0, 2\)")],
)
def test_bad_distributed_settings_name_what_is_wrong(flags, match):
    with pytest.raises(app.UsageError, match=match):
        main.distributed_args(*flags, env={})
