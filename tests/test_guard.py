"""Numerics guard: non-finite steps are skipped and counted; a streak stops the run or
rolls back; loss spikes are counted."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import guard, methods, optim, sharding, train
from tests.test_train import _batch, tiny_config


def _update(g, ok, loss):
    return guard.update(g, jnp.asarray(ok), jnp.float32(loss), 0.9, 3.0, 5)


def test_skips_are_counted_and_a_good_step_ends_the_streak():
    g = guard.init()
    for ok in (True, False, False):
        g = _update(g, ok, 1.0 if ok else jnp.nan)
    assert (int(g["skipped"]), int(g["run"])) == (2, 2)
    assert np.isfinite(g["loss_ema"])  # the NaN losses never enter the running mean
    g = _update(g, True, 1.0)
    assert (int(g["skipped"]), int(g["run"])) == (2, 0)


def test_a_spike_is_counted_only_after_warmup_and_above_the_factor():
    g = guard.init()
    g = _update(g, True, 100.0)  # step 1: no history yet, not a spike
    for _ in range(5):
        g = _update(g, True, 1.0)
    assert int(g["spikes"]) == 0
    g = _update(g, True, 2.0)  # below 3x the running mean (bias-corrected EMA ~ 1.6-ish)
    assert int(g["spikes"]) == 0
    g = _update(g, True, 1000.0)
    assert int(g["spikes"]) == 1


def test_a_nan_step_leaves_params_and_optimizer_state_untouched(fake_fmnist):
    config = tiny_config(fake_fmnist)
    mesh = sharding.make_mesh(config.mesh)
    method = methods.build(config)
    tx, schedule = optim.make(config, 10, 0)
    batch = _batch(16)
    state = train.initial_state(method, tx, jax.random.PRNGKey(0), batch)
    step = jax.jit(train.make_train_step(_Poisoned(method), tx, schedule, config, mesh))
    before = jax.device_get(state)

    bad = {**batch, "poison": np.full(16, np.nan, np.float32)}
    state, m = step(state, bad)
    after = jax.device_get(state)
    jax.tree.map(np.testing.assert_array_equal, after["params"], before["params"])
    jax.tree.map(np.testing.assert_array_equal, after["opt_state"], before["opt_state"])
    assert (int(m["skipped_total"]), int(m["skip_run"]), int(after["step"])) == (1, 1, 1)

    good = {**batch, "poison": np.zeros(16, np.float32)}
    state, m = step(state, good)
    assert (int(m["skipped_total"]), int(m["skip_run"])) == (1, 0)
    moved = jax.tree.map(
        lambda a, b: np.abs(a - b).max(), jax.device_get(state)["params"], before["params"]
    )
    assert max(jax.tree.leaves(moved)) > 0


class _Poisoned:
    """The method with a loss that is NaN (and NaN gradients) where batch["poison"] is NaN."""

    def __init__(self, method):
        self._method = method

    def __getattr__(self, name):
        return getattr(self._method, name)

    def loss(self, params, batch, rngs):
        poison = batch.pop("poison", jnp.zeros(()))
        loss, aux = self._method.loss(params, batch, rngs)
        return loss * (1 + 0 * jnp.mean(poison)), aux


def _poison_steps(monkeypatch, bad_steps):
    """Steps whose batch is poisoned, counted by calls (so a rerun step is clean)."""
    real_build, real_batch = methods.build, sharding.global_batch
    calls = {"n": 0}

    def global_batch(batch, mesh):
        calls["n"] += 1
        n = len(batch["image"])
        value = np.nan if calls["n"] in bad_steps else 0.0
        return real_batch({**batch, "poison": np.full(n, value, np.float32)}, mesh)

    monkeypatch.setattr(methods, "build", lambda config: _Poisoned(real_build(config)))
    monkeypatch.setattr(sharding, "global_batch", global_batch)


def _quiet(config):
    config.eval.at_end = False
    config.viz.every_steps = None
    config.ckpt.every_steps = 4
    config.log_every_steps = 1
    return config


def test_isolated_nan_steps_are_skipped_and_training_goes_on(fake_fmnist, tmp_path, monkeypatch):
    _poison_steps(monkeypatch, {3, 7})
    train.train_and_evaluate(_quiet(tiny_config(fake_fmnist)), tmp_path)
    last = [m for m in _metrics(tmp_path) if "loss" in m][-1]
    assert last["step"] == 16 and last["skipped_total"] == 2 and last["skip_run"] == 0
    assert np.isfinite(last["loss"])


def test_a_streak_of_nan_steps_stops_naming_the_last_good_checkpoint(
    fake_fmnist, tmp_path, monkeypatch
):
    _poison_steps(monkeypatch, set(range(9, 100)))
    config = _quiet(tiny_config(fake_fmnist, **{"guard.max_skips": 3}))
    with pytest.raises(
        train.NonFiniteError, match=r"last good checkpoint: step 8 in .*checkpoints"
    ):
        train.train_and_evaluate(config, tmp_path)


def test_rollback_restores_the_last_good_checkpoint_and_finishes(
    fake_fmnist, tmp_path, monkeypatch
):
    _poison_steps(monkeypatch, {9, 10, 11})  # calls 9-11: the first pass only
    config = _quiet(tiny_config(fake_fmnist, **{"guard.max_skips": 3}))
    config.guard.on_max_skips = "rollback"
    train.train_and_evaluate(config, tmp_path)
    steps = [m["step"] for m in _metrics(tmp_path) if "loss" in m]
    # streak 9-11 seen at step 12 (one step late, to not stall the device) -> back to 8
    assert steps == list(range(1, 12)) + list(range(9, 17))
    from mim_jax import checkpoint

    assert [m for m in _metrics(tmp_path) if "loss" in m][-1]["skipped_total"] == 0
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", read_only=True)
    assert ckpt.latest_step() == 16 and ckpt.read_meta(16) == {"rollbacks": 1}
    assert train.data_seed(config.seed, 1) != config.seed


def _metrics(workdir):
    import json

    return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
