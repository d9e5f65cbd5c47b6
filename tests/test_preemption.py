"""SIGTERM: checkpoint at the next step boundary, exit 0, resume from there."""

import signal
import socket

import pytest

from tests import runs


def test_sigterm_saves_exits_0_and_the_next_start_resumes(tmp_path):
    flags = ("--config.total_steps=400", "--config.ckpt.every_steps=1000")  # no periodic saves
    proc = runs.start(tmp_path, *flags)
    runs.wait_for(lambda: any(m["step"] >= 5 for m in runs.logged_steps(tmp_path)), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    saved = runs.checkpoint_steps(tmp_path)
    assert len(saved) == 1 and 5 <= saved[0] < 400, saved
    assert f"Preempted: checkpoint saved at step {saved[0]}" in err
    assert max(m["step"] for m in runs.logged_steps(tmp_path)) == saved[0]

    out = runs.run(tmp_path, *flags)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Restored checkpoint step {saved[0]}" in out.stderr
    assert runs.checkpoint_steps(tmp_path)[-1] == 400


@pytest.mark.slow
def test_two_processes_agree_on_the_preemption_step(tmp_path):
    """SIGTERM to one of two processes: JAX's preemption service makes both stop at the
    same step; one checkpoint holds both processes' state; both exit 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ("--distributed", "--config.total_steps=2000", "--config.ckpt.every_steps=10000")
    procs = [
        runs.start(
            tmp_path,
            *flags,
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(i),
        )
        for i in range(2)
    ]
    runs.wait_for(lambda: any(m["step"] >= 5 for m in runs.logged_steps(tmp_path)), procs[0])
    procs[1].send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    saved = runs.checkpoint_steps(tmp_path)
    assert len(saved) == 1 and saved[0] < 2000
    for err in errs:
        assert f"Preempted: checkpoint saved at step {saved[0]}" in err
