"""The one trainer, method-agnostic: mesh -> data -> sharded state -> jitted step -> loop
(logging, reconstruction PNGs, representation evals, checkpoints)."""

import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mim_jax import checkpoint, config_lib, methods, optim, sharding
from mim_jax.data import pipeline, sources
from mim_jax.evaluators import reconstruction, representation
from mim_jax.metrics import MetricWriter, Progress

State = dict  # {"step": int32 [], "params": tree, "opt_state": tree, "rng": uint32 [2]}


# ----------------------------------------------------------------------------- the step
def make_train_step(
    method, tx: optax.GradientTransformation, schedule, config: ml_collections.ConfigDict, mesh
) -> Callable[[State, dict], tuple[State, dict]]:
    """One optimizer update from one global batch (split into `grad_accum_steps`
    micro-batches whose gradients are averaged). Keys: fold_in(rng, step [, micro])."""
    d, accum = config.data, config.grad_accum_steps

    def loss_and_grads(params, batch, key):
        rngs = {"masking": jax.random.fold_in(key, 0), "dropout": jax.random.fold_in(key, 1)}
        batch = {**batch, "image": pipeline.normalize(batch["image"], d.mean, d.std)}
        (loss, aux), grads = jax.value_and_grad(method.loss, has_aux=True)(params, batch, rngs)
        return grads, {"loss": loss, **aux}

    def train_step(state: State, batch: dict) -> tuple[State, dict]:
        key = jax.random.fold_in(state["rng"], state["step"])
        params = state["params"]
        if accum == 1:
            grads, metrics = loss_and_grads(params, batch, key)
        else:
            # [B, ...] -> [accum, B / accum, ...] taking every accum-th row, so each
            # micro-batch stays spread over all devices.
            def split(x):
                x = x.reshape(x.shape[0] // accum, accum, *x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(
                    x, NamedSharding(mesh, P(None, sharding.AXES))
                )

            def body(carry, xs):
                i, micro = xs
                grads, metrics = loss_and_grads(params, micro, jax.random.fold_in(key, i))
                return jax.tree.map(jnp.add, carry, (grads, metrics)), None

            micro = jax.tree.map(split, batch)
            first = jax.tree.map(lambda x: x[0], micro)
            shapes = jax.eval_shape(loss_and_grads, params, first, key)
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            sums, _ = jax.lax.scan(body, zeros, (jnp.arange(accum), micro))
            grads, metrics = jax.tree.map(lambda x: x / accum, sums)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {
            "step": state["step"] + 1,
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
            "rng": state["rng"],
        }
        metrics = {**metrics, "grad_norm": optax.global_norm(grads), "lr": schedule(state["step"])}
        return new_state, metrics

    return train_step


# ------------------------------------------------------------------------------- helpers
def _every(step: int, interval: int | None) -> bool:
    return bool(interval) and step % interval == 0


def _write_json(path: Path, obj) -> None:
    if jax.process_index() == 0:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(obj, indent=2))
        tmp.replace(path)


def _abstract_with_shardings(abstract, shardings):
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )


# -------------------------------------------------------------------------------- train
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config.method` on `config.data`, resuming from `<workdir>/checkpoints`.

    Returns the final evaluation summary (also written to `<workdir>/eval_summary.json`).
    """
    # -- Setup: everything that can fail on a bad config fails here, before compiling.
    workdir = Path(workdir)
    config_lib.validate(config, jax.device_count())
    mesh = sharding.make_mesh(config.mesh)
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    # -- Data
    d = config.data
    train_source = sources.build(d, d.train_split, config.seed)
    steps_per_epoch = len(train_source) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"config.batch_size={config.batch_size} exceeds the {len(train_source)} examples "
            f"of {d.name}/{d.train_split}"
        )
    steps = lambda cfg, name, where: config_lib.get_steps(cfg, name, steps_per_epoch, where)
    total_steps = steps(config, "total", "config")
    warmup_steps = steps(config.optim, "warmup", "config.optim") or 0
    ckpt_every = steps(config.ckpt, "every", "config.ckpt")
    viz_every = steps(config.viz, "every", "config.viz")
    eval_every = steps(config.eval, "every", "config.eval")
    data_iter = iter(pipeline.train_dataset(train_source, d, config.batch_size, config.seed))

    # -- Method, optimizer and the sharded state
    method = methods.build(config)
    tx, schedule = optim.make(config, total_steps, warmup_steps)
    example = {
        "image": jax.ShapeDtypeStruct(
            (config.batch_size, d.image_size, d.image_size, d.channels), jnp.float32
        )
    }

    def init(seed_key) -> State:
        params = method.init(jax.random.fold_in(seed_key, 0), example)
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "opt_state": tx.init(params),
            "rng": jax.random.fold_in(seed_key, 1),
        }

    seed_key = jax.random.PRNGKey(config.seed)
    abstract = jax.eval_shape(init, seed_key)
    state_sh = sharding.tree_shardings(mesh, abstract, config.mesh.fsdp_min_size)
    init_fn = jax.jit(init, out_shardings=state_sh)
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract["params"]))
    logging.info(
        "%s: %s params | %d examples, %d steps/epoch, %d steps (%d warmup), peak lr %.3g | mesh %s",
        config.method,
        f"{num_params:,}",
        len(train_source),
        steps_per_epoch,
        total_steps,
        warmup_steps,
        optim.peak_lr(config),
        dict(mesh.shape),
    )

    ckpt = checkpoint.Checkpointer(workdir, config.ckpt.keep)
    state = ckpt.restore(_abstract_with_shardings(abstract, state_sh), data_iter)
    if state is None:
        state = init_fn(seed_key)
    start_step = int(state["step"])

    repl = sharding.replicated(mesh)
    train_step = jax.jit(
        make_train_step(method, tx, schedule, config, mesh),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=(state_sh, repl),
        donate_argnums=(0,),
    )

    # -- Evaluators (built lazily: only what the config asks for)
    eval_source = sources.build(d, d.eval_split, config.seed)
    writer = MetricWriter(workdir)
    summary_path = workdir / "eval_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.setdefault("history", [])
    wants_eval = hasattr(method, "features") and (eval_every or config.eval.at_end)
    evaluator = None
    if wants_eval:
        evaluator = representation.RepresentationEvaluator(
            config,
            lambda params, images: method.features(params, images, config.eval.features),
            mesh,
            train_source=train_source,
            eval_source=eval_source,
        )
        if config.eval.baselines and "raw_pixels" not in summary:
            summary["raw_pixels"] = evaluator.raw_pixels()
            summary["random_init"] = evaluator.evaluate(init_fn(seed_key)["params"])
            logging.info(
                "baselines: raw pixels %s | random init %s",
                summary["raw_pixels"],
                summary["random_init"],
            )
            _write_json(summary_path, summary)

    def run_eval(step: int, params) -> None:
        scores = evaluator.evaluate(params)
        summary.update(step=step, features=config.eval.features, **scores)
        summary["history"].append({"step": step, **scores})
        writer.write(step, {f"eval/{k}": v for k, v in scores.items()})
        _write_json(summary_path, summary)

    viz_fn = None
    if viz_every and hasattr(method, "reconstruct"):
        viz_batch, _ = next(pipeline.eval_batches(eval_source, d, config.viz.num_images))
        viz_key = jax.random.fold_in(seed_key, 2)
        viz_fn = jax.jit(
            lambda params, images: method.reconstruct(
                params, pipeline.normalize(images, d.mean, d.std), {"masking": viz_key}
            ),
            out_shardings=repl,
        )

    def save_viz(step: int, params) -> None:
        views = jax.device_get(viz_fn(params, viz_batch["image"]))
        order = getattr(method, "reconstruction_views", sorted(views))
        views = {k: pipeline.denormalize(views[k], d.mean, d.std) for k in order}
        if jax.process_index() == 0:
            reconstruction.save_grid(views, workdir / "reconstructions" / f"step_{step:07d}.png")

    # -- The loop
    logging.info("Training from step %d to %d.", start_step, total_steps)
    progress = Progress(total_steps, start_step, config.batch_size)
    acc, acc_n = None, 0  # metrics summed on device over the logging interval
    try:
        for step in range(start_step + 1, total_steps + 1):
            batch = sharding.global_batch(next(data_iter), mesh)
            state, metrics = train_step(state, batch)
            acc = metrics if acc is None else jax.tree.map(jnp.add, acc, metrics)
            acc_n += 1
            progress.update(step)
            if step == 1 or _every(step, config.log_every_steps) or step == total_steps:
                host = {k: float(v) / acc_n for k, v in jax.device_get(acc).items()}
                host.update(lr=float(metrics["lr"]), epoch=step / steps_per_epoch)
                writer.write(step, progress.report(step, host))
                acc, acc_n = None, 0
            tic = time.perf_counter()
            if viz_fn is not None and (_every(step, viz_every) or step == total_steps):
                save_viz(step, state["params"])
            if evaluator is not None and (
                _every(step, eval_every) or (step == total_steps and config.eval.at_end)
            ):
                run_eval(step, state["params"])
            if _every(step, ckpt_every) or step == total_steps:
                ckpt.save(step, state, data_iter)
            progress.exclude(time.perf_counter() - tic)
    finally:  # pending async checkpoint writes complete even when training is interrupted
        progress.close()
        ckpt.wait()
        ckpt.close()
        writer.close()
    if "knn_top1" in summary:
        logging.info(
            "Final (step %s, %s features): kNN top-1 %.4f, linear probe top-1 %.4f",
            summary["step"],
            summary["features"],
            summary["knn_top1"],
            summary["linear_top1"],
        )
    return summary
