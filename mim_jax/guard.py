"""Numerics guard inside the train step: non-finite updates are skipped (and counted);
loss spikes against a running mean are counted for the host to log."""

import jax
import jax.numpy as jnp

Guard = dict  # {"skipped", "run", "spikes", "good": int32 [], "loss_ema": float32 []}

# Metrics that are running totals (the host logs their latest value, not a mean).
TOTALS = ("skipped_total", "skip_run", "spikes_total")


def init() -> Guard:
    zero = jnp.zeros((), jnp.int32)
    return {"skipped": zero, "run": zero, "spikes": zero, "good": zero, "loss_ema": jnp.zeros(())}


def is_finite(loss: jax.Array, grad_norm: jax.Array) -> jax.Array:
    """One bool: the loss and every gradient entry are finite (a non-finite entry makes
    the global norm non-finite)."""
    return jnp.isfinite(loss) & jnp.isfinite(grad_norm)


def select(ok: jax.Array, new, old):
    """`new` where ok, else `old`, leaf by leaf (the skipped update leaves no trace)."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def update(
    guard: Guard, ok: jax.Array, loss: jax.Array, decay: float, spike_factor: float, warmup: int
) -> Guard:
    """Counts a skipped step, or folds a good loss into the running mean.

    A spike is a finite loss above `spike_factor` x the running mean (bias-corrected EMA
    with `decay`) once `warmup` good steps were seen.
    """
    good = guard["good"] + ok.astype(jnp.int32)
    ema = jnp.where(ok, decay * guard["loss_ema"] + (1 - decay) * loss, guard["loss_ema"])
    mean = guard["loss_ema"] / (1 - decay ** guard["good"].astype(jnp.float32))
    spike = ok & (spike_factor > 0) & (guard["good"] >= warmup) & (loss > spike_factor * mean)
    return {
        "skipped": guard["skipped"] + (~ok).astype(jnp.int32),
        "run": jnp.where(ok, 0, guard["run"] + 1),
        "spikes": guard["spikes"] + spike.astype(jnp.int32),
        "good": good,
        "loss_ema": ema,
    }


def metrics(guard: Guard) -> dict[str, jax.Array]:
    return {
        "skipped_total": guard["skipped"],
        "skip_run": guard["run"],
        "spikes_total": guard["spikes"],
    }
