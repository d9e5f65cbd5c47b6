"""Checkpoints: exact resume after kill -9 (also mid-save), damaged steps, config changes,
resume / init_from, and restoring onto a different mesh."""

import json
import random
import shutil
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mim_jax import checkpoint
from tests import runs

TOTAL = 60


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted reference run."""
    workdir = tmp_path_factory.mktemp("straight")
    out = runs.run(workdir, f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


def _assert_same_as(straight, workdir, after: int) -> None:
    runs.assert_trees_equal(runs.saved_params(straight, TOTAL), runs.saved_params(workdir, TOTAL))
    a, b = runs.losses(straight), runs.losses(workdir)
    assert all(b[s] == a[s] for s in range(after + 1, TOTAL + 1)), "losses differ after resume"


def test_kill_9_at_a_random_step_resumes_bit_identical(straight, tmp_path):
    kill_at = random.Random().randint(2, TOTAL - 10)
    proc = runs.start(tmp_path, f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    runs.wait_for(lambda: any(m["step"] >= kill_at for m in runs.logged_steps(tmp_path)), proc)
    runs.kill(proc, signal.SIGKILL)
    resumed_from = max(runs.checkpoint_steps(tmp_path), default=0)  # 0: none committed yet
    assert resumed_from < TOTAL, f"killed at {kill_at} too late"

    out = runs.run(tmp_path, f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    assert out.returncode == 0, out.stderr[-3000:]
    if resumed_from:
        assert f"Restored checkpoint step {resumed_from}" in out.stderr
    _assert_same_as(straight, tmp_path, after=resumed_from)


def test_kill_9_during_an_async_save_uses_the_newest_complete_step(straight, tmp_path):
    ckpt_dir = tmp_path / "checkpoints"

    def saving() -> bool:  # Orbax writes <step>.orbax-checkpoint-tmp-* and renames on commit
        return ckpt_dir.exists() and any(
            ".orbax-checkpoint-tmp" in p.name for p in ckpt_dir.iterdir()
        )

    flags = (f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    proc = runs.start(tmp_path, *flags)
    runs.wait_for(lambda: len(runs.checkpoint_steps(tmp_path)) >= 2 and saving(), proc, poll=0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    partial = [p.name for p in ckpt_dir.iterdir() if ".orbax-checkpoint-tmp" in p.name]
    assert partial, "the kill did not land inside a save"
    complete = max(runs.checkpoint_steps(tmp_path))

    out = runs.run(tmp_path, *flags)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Restored checkpoint step {complete}" in out.stderr
    _assert_same_as(straight, tmp_path, after=complete)


def test_a_truncated_checkpoint_falls_back_to_the_previous_step(straight, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    steps = runs.checkpoint_steps(workdir)
    newest, previous = steps[-1], steps[-2]
    data_files = [
        p for p in (workdir / "checkpoints" / str(newest) / "state").rglob("*") if p.is_file()
    ]
    biggest = max(data_files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 3])  # a torn write

    out = runs.run(workdir, f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Checkpoint step {newest} in" in out.stderr and "unreadable" in out.stderr
    assert f"Restored checkpoint step {previous}" in out.stderr
    assert [p.name.split("-")[0] for p in (workdir / "corrupt_checkpoints").iterdir()] == [
        str(newest)
    ]
    _assert_same_as(straight, workdir, after=previous)


def test_a_changed_config_is_refused_naming_the_keys(straight, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    flags = (f"--config.total_steps={TOTAL}", "--config.model.mask_ratio=0.5", "--config.seed=3")
    out = runs.run(workdir, *flags)
    assert out.returncode != 0
    assert "model.mask_ratio: 0.75 -> 0.5" in out.stderr and "seed: 0 -> 3" in out.stderr
    assert "allow_config_change" in out.stderr
    # harmless changes (how often to log or checkpoint) are accepted
    out = runs.run(workdir, f"--config.total_steps={TOTAL}", "--config.log_every_steps=7")
    assert out.returncode == 0, out.stderr[-3000:]
    out = runs.run(workdir, *flags, "--config.allow_config_change=True")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "with a changed config" in out.stderr


def test_resume_from_another_workdir_continues_that_run(straight, tmp_path):
    half = tmp_path / "half"
    flags = (f"--config.total_steps={TOTAL}", "--config.ckpt.every_steps=4")
    out = runs.run(half, *flags, "--config.ckpt.keep_every_steps=16")
    assert out.returncode == 0
    assert runs.checkpoint_steps(half) == [16, 32, 48, 56, 60]  # the last 2 + every 16th
    for step in (48, 56, 60):  # the new workdir continues from step 32
        shutil.rmtree(half / "checkpoints" / str(step))
    new = tmp_path / "new"
    out = runs.run(new, f"--config.total_steps={TOTAL}", f"--config.resume={half}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Resumed from config.resume" in out.stderr
    runs.assert_trees_equal(runs.saved_params(straight, TOTAL), runs.saved_params(new, TOTAL))


def test_init_from_loads_matching_weights_and_reports_the_rest(straight, tmp_path):
    # a deeper encoder: blocks 0-1 come from the run, block 2 is new; the decoder is wider
    flags = ("--config.total_steps=1", "--config.model.depth=3", "--config.model.decoder_width=48")
    out = runs.run(tmp_path, *flags, f"--config.init_from={straight}")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "init_report.json").read_text())
    assert "encoder/blocks_0/attn/qkv/kernel" in report["loaded"]
    assert any(k.startswith("encoder/blocks_2/") for k in report["reinitialized"])
    assert any(k.startswith("decoder_embed/kernel (shape") for k in report["reinitialized"])
    assert not report["skipped"]
    loaded = runs.saved_params(straight, TOTAL)["patch_embed"]
    # one step of training moved it only a little from the loaded value
    now = runs.saved_params(tmp_path, 1)["patch_embed"]
    np.testing.assert_allclose(now["proj"]["kernel"], loaded["proj"]["kernel"], atol=0.05)


def test_init_from_a_missing_path_fails_clearly(tmp_path):
    out = runs.run(
        tmp_path / "run", "--config.total_steps=1", f"--config.init_from={tmp_path}/nope"
    )
    assert out.returncode != 0
    assert "config.init_from=" in out.stderr and "no checkpoint" in out.stderr


MESH_FLAGS = (
    "--config.ckpt.every_steps=4",
    "--config.mesh.fsdp_min_size=1",  # shard every divisible param over the fsdp axis
    "--config.allow_config_change=True",  # total_steps 8 -> 9
)


@pytest.fixture(scope="module")
def on_eight(tmp_path_factory):
    """A run to step 8 on 8 devices (FSDP), and its continuation to step 9 on 8 devices."""
    eight = tmp_path_factory.mktemp("eight")
    out = runs.run(eight, "--config.total_steps=8", "--config.mesh.fsdp=8", *MESH_FLAGS, devices=8)
    assert out.returncode == 0, out.stderr[-3000:]
    reference = tmp_path_factory.mktemp("reference")
    shutil.copytree(eight, reference, dirs_exist_ok=True)
    out = runs.run(
        reference, "--config.total_steps=9", "--config.mesh.fsdp=8", *MESH_FLAGS, devices=8
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return eight, reference


@pytest.mark.parametrize("devices", [4, 1])
def test_restore_onto_a_smaller_mesh_gives_the_same_next_loss(on_eight, tmp_path, devices):
    eight, reference = on_eight
    fewer = tmp_path / "fewer"
    shutil.copytree(eight, fewer)
    flags = ("--config.total_steps=9", f"--config.mesh.fsdp={devices}", *MESH_FLAGS)
    out = runs.run(fewer, *flags, devices=devices)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Restored checkpoint step 8" in out.stderr
    np.testing.assert_allclose(runs.losses(fewer)[9], runs.losses(reference)[9], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        runs.saved_params(fewer, 9),
        runs.saved_params(reference, 9),
    )


def test_restore_params_reports_loaded_reinitialized_and_skipped(tmp_path):
    source = {"a": np.ones((2, 3), np.float32), "c": np.ones(3), "extra": np.ones(4)}
    export = tmp_path / "export"
    saver = ocp.StandardCheckpointer()
    saver.save(export / "params", source)
    saver.wait_until_finished()
    (export / "export.json").write_text("{}")
    target = {"a": jax.numpy.zeros((2, 3)), "b": jax.numpy.zeros(5), "c": jax.numpy.zeros(2)}
    params, report = checkpoint.restore_params(str(export), target)
    np.testing.assert_array_equal(params["a"], 1.0)
    np.testing.assert_array_equal(params["b"], 0.0)  # kept from the init
    np.testing.assert_array_equal(params["c"], 0.0)  # shape mismatch: kept from the init
    assert report == {
        "loaded": ["a"],
        "reinitialized": ["b", "c (shape (3,) != (2,))"],
        "skipped": ["extra"],
        "resampled": [],
    }


def test_restore_params_resamples_a_pos_embed_of_another_grid(tmp_path):
    from mim_jax.models import posemb

    table = np.random.default_rng(0).normal(size=(1, 1 + 4 * 4, 8)).astype(np.float32)
    export = tmp_path / "export"
    saver = ocp.StandardCheckpointer()
    saver.save(export / "params", {"pos_embed": table})
    saver.wait_until_finished()
    (export / "export.json").write_text("{}")
    target = {"pos_embed": jax.numpy.zeros((1, 1 + 6 * 6, 8))}
    params, report = checkpoint.restore_params(str(export), target)
    assert report["loaded"] == ["pos_embed"]
    assert report["resampled"] == ["pos_embed ((1, 17, 8) -> (1, 37, 8))"]
    np.testing.assert_allclose(
        params["pos_embed"], posemb.resample(table, (4, 4), (6, 6)), rtol=1e-6
    )


@pytest.mark.slow
def test_restore_onto_a_larger_mesh_gives_the_same_next_loss(tmp_path):
    """The reverse: written on 1 device, continued on 8 (FSDP) and on 1."""
    one = tmp_path / "one"
    out = runs.run(one, "--config.total_steps=8", *MESH_FLAGS, devices=1)
    assert out.returncode == 0, out.stderr[-3000:]
    for name, devices in (("ref", 1), ("eight", 8)):
        shutil.copytree(one, tmp_path / name)
        flags = ("--config.total_steps=9", f"--config.mesh.fsdp={devices}", *MESH_FLAGS)
        out = runs.run(tmp_path / name, *flags, devices=devices)
        assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_allclose(
        runs.losses(tmp_path / "eight")[9], runs.losses(tmp_path / "ref")[9], rtol=1e-5
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        runs.saved_params(tmp_path / "eight", 9),
        runs.saved_params(tmp_path / "ref", 9),
    )
