"""The one trainer, method-agnostic: mesh -> data -> sharded state -> jitted step -> loop
(logging, reconstruction PNGs, representation evals, checkpoints)."""

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mim_jax import checkpoint, config_lib, guard, methods, optim, preemption, sharding
from mim_jax.data import pipeline, sources
from mim_jax.evaluators import predictions, reconstruction, representation
from mim_jax.metrics import MetricWriter, Progress

# {"step": int32 [], "params": tree, "opt_state": tree, "rng": uint32 [2], "guard": guard.Guard}
# plus "model_state" (stateful methods: BatchNorm statistics) and "ema_params" (ema_decay > 0)
State = dict


# ----------------------------------------------------------------------------- the step
def make_train_step(
    method, tx: optax.GradientTransformation, schedule, config: ml_collections.ConfigDict, mesh
) -> Callable[[State, dict], tuple[State, dict]]:
    """One optimizer update from one global batch (split into `grad_accum_steps`
    micro-batches whose gradients are averaged). Keys: fold_in(rng, step [, micro]).
    A non-finite loss or gradient leaves params and optimizer state as they were."""
    d, accum, g = config.data, config.grad_accum_steps, config.guard

    stateful = getattr(method, "stateful", False)  # e.g. BatchNorm statistics
    ema_decay = config.optim.ema_decay

    def loss_and_grads(params, model_state, batch, key):
        rngs = {
            "masking": jax.random.fold_in(key, 0),
            "dropout": jax.random.fold_in(key, 1),
            "augment": jax.random.fold_in(key, 2),
        }
        batch = {**batch, "image": pipeline.normalize(batch["image"], d.mean, d.std)}
        kwargs = {"model_state": model_state} if stateful else {}
        loss_fn = lambda p: method.loss(p, batch, rngs, **kwargs)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        model_state = aux.pop("model_state", model_state)
        return grads, {"loss": loss, **aux}, model_state

    def train_step(state: State, batch: dict) -> tuple[State, dict]:
        key = jax.random.fold_in(state["rng"], state["step"])
        params, model_state = state["params"], state.get("model_state", {})
        if accum == 1:
            grads, metrics, model_state = loss_and_grads(params, model_state, batch, key)
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
                sums, ms = carry
                grads, metrics, ms = loss_and_grads(params, ms, micro, jax.random.fold_in(key, i))
                return (jax.tree.map(jnp.add, sums, (grads, metrics)), ms), None

            micro = jax.tree.map(split, batch)
            first = jax.tree.map(lambda x: x[0], micro)
            shapes = jax.eval_shape(loss_and_grads, params, model_state, first, key)[:2]
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            (sums, model_state), _ = jax.lax.scan(
                body, (zeros, model_state), (jnp.arange(accum), micro)
            )
            grads, metrics = jax.tree.map(lambda x: x / accum, sums)
        # The update (AdamW, the guard, EMA) under one name: profiles attribute its ops.
        with jax.named_scope("optimizer"):
            updates, opt_state = tx.update(grads, state["opt_state"], params)
            new_params = optax.apply_updates(params, updates)
            grad_norm = optax.global_norm(grads)
            ok = guard.is_finite(metrics["loss"], grad_norm)
            guard_state = guard.update(
                state["guard"],
                ok,
                metrics["loss"],
                g.spike_ema_decay,
                g.spike_factor,
                g.spike_warmup_steps,
            )
            new_state = {
                "step": state["step"] + 1,
                "params": guard.select(ok, new_params, params),
                "opt_state": guard.select(ok, opt_state, state["opt_state"]),
                "rng": state["rng"],
                "guard": guard_state,
            }
            if stateful:
                new_state["model_state"] = guard.select(ok, model_state, state["model_state"])
            if "ema_params" in state:  # EMA of the weights (timm ModelEmaV2: after each update)
                ema = jax.tree.map(
                    lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                    state["ema_params"],
                    new_state["params"],
                )
                new_state["ema_params"] = guard.select(ok, ema, state["ema_params"])
        metrics = {
            **metrics,
            "grad_norm": grad_norm,
            "lr": schedule(state["step"]),
            **guard.metrics(guard_state),
        }
        return new_state, metrics

    return train_step


def initial_state(
    method,
    tx: optax.GradientTransformation,
    seed_key: jax.Array,
    example,
    ema: bool = False,
) -> State:
    """Step 0: fresh params (key fold 0), their optimizer state, the run's rng (fold 1),
    for stateful methods their other variables (BatchNorm statistics), and with `ema` a
    copy of the params to average into."""
    key = jax.random.fold_in(seed_key, 0)
    if hasattr(method, "init_variables"):
        variables = dict(method.init_variables(key, example))
        params = variables.pop("params")
    else:
        params, variables = method.init(key, example), {}
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "rng": jax.random.fold_in(seed_key, 1),
        "guard": guard.init(),
    }
    if getattr(method, "stateful", False):
        state["model_state"] = variables
    if ema:
        state["ema_params"] = jax.tree.map(jnp.copy, params)
    return state


def make_optimizer(
    method, config: ml_collections.ConfigDict, example, total_steps, warmup_steps, milestones
):
    """optim.make with the method's hints: no-decay names, layer-wise lr decay scales
    (config.optim.layer_decay < 1) and frozen params."""
    hints = {}
    needs_params = config.optim.layer_decay < 1 or hasattr(method, "trainable")
    if needs_params:
        abstract = jax.eval_shape(
            lambda k: initial_state(method, optax.identity(), k, example)["params"],
            jax.random.PRNGKey(0),
        )
        if config.optim.layer_decay < 1:
            if not hasattr(method, "layer_scales"):
                raise ValueError(
                    f"config.optim.layer_decay={config.optim.layer_decay} needs a ViT "
                    f"classifier; config.method={config.method!r} has no layers to decay"
                )
            hints["layer_scales"] = method.layer_scales(abstract, config.optim.layer_decay)
        if hasattr(method, "trainable"):
            hints["trainable"] = method.trainable(abstract)
    return optim.make(
        config,
        total_steps,
        warmup_steps,
        getattr(method, "no_weight_decay", ()),
        milestones,
        **hints,
    )


@dataclasses.dataclass(frozen=True)
class StepParts:
    """What training and the ahead-of-time compile tool (tools/aot.py) share."""

    method: Any
    init_fn: Callable[[jax.Array], State]  # jitted: seed key -> sharded initial state
    seed_key: jax.Array
    abstract_state: State  # ShapeDtypeStructs carrying the state's shardings
    abstract_batch: dict  # ShapeDtypeStructs of one global batch, batch-sharded
    train_step: Callable[[State, dict], tuple[State, dict]]  # jitted, state donated


def build_step(
    config: ml_collections.ConfigDict,
    mesh,
    steps_per_epoch: int,
    total_steps: int,
    warmup_steps: int,
) -> StepParts:
    """The method, its optimizer, the sharded state and the jitted train step of `config`
    on `mesh` (shapes only: no data is read, nothing is compiled yet)."""
    method = methods.build(config)
    milestones = tuple(config.optim.milestone_steps) or tuple(
        round(e * steps_per_epoch) for e in config.optim.milestone_epochs
    )
    shape = (config.batch_size, *config_lib.input_shape(config.data))
    example = {"image": jax.ShapeDtypeStruct(shape, jnp.float32)}
    tx, schedule = make_optimizer(method, config, example, total_steps, warmup_steps, milestones)
    ema = config.optim.ema_decay > 0
    init = lambda seed_key: initial_state(method, tx, seed_key, example, ema)
    seed_key = jax.random.PRNGKey(config.seed)
    abstract = jax.eval_shape(init, seed_key)
    state_sh = sharding.tree_shardings(mesh, abstract, config.mesh.fsdp_min_size)
    batch_sh = sharding.batch_sharding(mesh)
    pixels = jnp.float32 if config.data.num_mel_bins else jnp.uint8  # as the pipeline sends
    abstract_batch = {
        "image": jax.ShapeDtypeStruct(shape, pixels, sharding=batch_sh),
        "label": jax.ShapeDtypeStruct(shape[:1], jnp.int32, sharding=batch_sh),
    }
    train_step = jax.jit(
        make_train_step(method, tx, schedule, config, mesh),
        in_shardings=(state_sh, batch_sh),
        out_shardings=(state_sh, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
    return StepParts(
        method=method,
        init_fn=jax.jit(init, out_shardings=state_sh),
        seed_key=seed_key,
        abstract_state=_abstract_with_shardings(abstract, state_sh),
        abstract_batch=abstract_batch,
        train_step=train_step,
    )


# ------------------------------------------------------------------------------- helpers
def protocol(method, config: ml_collections.ConfigDict) -> str:
    """What a run evaluates, for eval_summary.json: the method's own protocol (classifiers),
    else evaluation only (no steps) or pretraining with its kNN / linear-probe monitor."""
    if hasattr(method, "protocol"):
        return method.protocol
    if config.total_steps == 0:
        return "frozen_eval (kNN, linear probe, few-shot)"
    return f"{config.method} pretraining (kNN + linear-probe monitor)"


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


def data_seed(seed: int, rollbacks: int) -> int:
    """The data-order seed: `seed`, and a fresh one after each numerics rollback."""
    if rollbacks == 0:
        return seed
    return int(np.random.SeedSequence([seed, rollbacks]).generate_state(1)[0] >> 1)


def check_config_change(
    config: ml_collections.ConfigDict, saved: Path | epath.Path, where: str
) -> None:
    """Refuses to continue a run whose saved config.json differs from `config` in a key
    that changes what is computed (unless config.allow_config_change)."""
    if not saved.exists():
        return
    changes = config_lib.config_changes(json.loads(saved.read_text()), config)
    if not changes:
        return
    listing = "\n  ".join(changes)
    if not config.allow_config_change:
        raise ValueError(
            f"{where} holds a run with a different config ({saved}):\n  {listing}\n"
            "Use another workdir, or pass --config.allow_config_change=True to continue anyway."
        )
    logging.warning("Continuing %s with a changed config:\n  %s", where, listing)


def _write_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Writes config.json; an existing, different one is kept as config.<time>.json."""
    if jax.process_index() != 0:
        return
    path, text = workdir / "config.json", config.to_json_best_effort(indent=2)
    if path.exists() and path.read_text() != text:
        path.replace(workdir / f"config.{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.write_text(text)


class NonFiniteError(FloatingPointError):
    """Too many consecutive steps with a non-finite loss or gradient."""


# -------------------------------------------------------------------------------- train
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config.method` on `config.data` in `workdir`, resuming where it stopped.

    Returns the final evaluation summary (also written to `<workdir>/eval_summary.json`);
    `summary["preempted"]` is True when SIGTERM ended the run early (after a checkpoint).
    """
    # -- Setup: everything that can fail on a bad config fails here, before compiling.
    workdir = Path(workdir).absolute()
    config_lib.validate(config, jax.device_count())
    mesh = sharding.make_mesh(config.mesh)

    # -- Data
    d = config.data
    train_source = sources.build(d, d.train_split, config.seed)
    # An epoch is one pass over the examples (or data.epoch_len class-balanced draws); a
    # video gives num_samples clips (rows).
    per_example = d.num_samples if d.num_frames else 1
    steps_per_epoch = (
        pipeline.examples_per_epoch(train_source, d) * per_example // config.batch_size
    )
    if steps_per_epoch == 0:
        raise ValueError(
            f"config.batch_size={config.batch_size} exceeds the {len(train_source)} examples "
            f"of {d.name}/{d.train_split}"
        )
    steps = lambda cfg, name, where: config_lib.get_steps(cfg, name, steps_per_epoch, where)
    total_steps = steps(config, "total", "config")
    warmup_steps = steps(config.optim, "warmup", "config.optim") or 0
    viz_every = steps(config.viz, "every", "config.viz")
    eval_every = steps(config.eval, "every", "config.eval")

    def make_data_iter(meta: dict) -> pipeline.DevicePrefetcher:
        seed = data_seed(config.seed, meta.get("rollbacks", 0))
        host_iter = iter(pipeline.train_dataset(train_source, d, config.batch_size, seed))
        rows = d.num_samples if d.num_frames else 1
        return pipeline.DevicePrefetcher(
            host_iter, mesh, d.device_prefetch, d.max_bad_fraction, rows_per_element=rows
        )

    # -- Checkpoints: a workdir holding another config's run stops here.
    ckpt = checkpoint.Checkpointer(
        workdir / "checkpoints",
        keep=config.ckpt.keep,
        keep_every=steps(config.ckpt, "keep_every", "config.ckpt"),
        every_steps=steps(config.ckpt, "every", "config.ckpt"),
        every_minutes=config.ckpt.every_minutes,
    )
    if ckpt.latest_step() is not None:
        check_config_change(config, workdir / "config.json", f"workdir {workdir}")
    _write_config(config, workdir)

    # -- Method, optimizer, the sharded state and the step
    parts = build_step(config, mesh, steps_per_epoch, total_steps, warmup_steps)
    method, init_fn, seed_key = parts.method, parts.init_fn, parts.seed_key
    abstract_sh, train_step = parts.abstract_state, parts.train_step
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract_sh["params"]))
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

    # -- Where to start: own checkpoint > config.resume > config.init_from > scratch
    restored = ckpt.restore(abstract_sh, make_data_iter)
    if restored is None and config.resume:
        other = checkpoint.Checkpointer(checkpoint.checkpoints_dir(config.resume), read_only=True)
        check_config_change(config, other.directory.parent / "config.json", "config.resume")
        restored = other.restore(abstract_sh, make_data_iter)
        if restored is None:
            raise FileNotFoundError(f"config.resume={config.resume!r}: no checkpoint there")
        logging.info("Resumed from config.resume=%s (step %d)", config.resume, restored[0])
    if restored is None:
        state, meta = init_fn(seed_key), {"rollbacks": 0}
        if config.init_from:
            state["params"], report = checkpoint.restore_params(config.init_from, state["params"])
            _write_json(workdir / "init_report.json", {"init_from": config.init_from, **report})
            if "ema_params" in state:  # the average starts from the loaded weights
                state["ema_params"] = jax.tree.map(jnp.copy, state["params"])
            logging.info(
                "init_from %s: %d params loaded (resampled: %s), %d re-initialized %s, "
                "%d skipped %s",
                config.init_from,
                len(report["loaded"]),
                report["resampled"] or "none",
                len(report["reinitialized"]),
                report["reinitialized"],
                len(report["skipped"]),
                report["skipped"],
            )
        data_iter = make_data_iter(meta)
    else:
        _, state, data_iter, meta = restored
        meta = {"rollbacks": 0, **meta}
    start_step = int(state["step"])

    repl = sharding.replicated(mesh)

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
        if config.eval.baselines and "random_init" not in summary:
            if config.eval.raw_pixels:
                summary["raw_pixels"] = evaluator.raw_pixels()
            summary["random_init"] = evaluator.evaluate(init_fn(seed_key)["params"])
            logging.info(
                "baselines: raw pixels %s | random init %s",
                summary.get("raw_pixels", "(off)"),
                summary["random_init"],
            )
            _write_json(summary_path, summary)

    predictor = None
    if hasattr(method, "predict") and (eval_every or config.eval.at_end):
        predictor = predictions.PredictionEvaluator(config, method.predict, mesh, eval_source)
    summary.update(
        protocol=protocol(method, config),
        dataset=d.tfds_name or d.name,
        checkpoint=config.init_from or config.resume or "none (random init)",
    )

    def evaluate(params, model_state, final: bool) -> dict:
        if predictor is not None:
            return predictor.evaluate(params, model_state, final)
        summary["features"] = config.eval.features
        return evaluator.evaluate(params)

    def run_eval(step: int, state: State) -> None:
        model_state = state.get("model_state", {})
        final = step == total_steps  # multi-view testing, where configured
        scores = evaluate(state["params"], model_state, final)
        if "ema_params" in state:
            ema_scores = evaluate(state["ema_params"], model_state, final)
            skip = ("num_examples", "views")
            scores.update({f"ema_{k}": v for k, v in ema_scores.items() if k not in skip})
        summary.update(step=step, **scores)
        summary["history"].append({"step": step, **scores})
        numbers = {k: v for k, v in scores.items() if not isinstance(v, str)}
        writer.write(step, {f"eval/{k}": v for k, v in numbers.items()})
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
        if jax.process_index() == 0:
            path = workdir / "reconstructions" / f"step_{step:07d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            reconstruction.render(views, order, d).save(path)

    # -- The loop
    logging.info("Training from step %d to %d.", start_step, total_steps)
    progress = Progress(total_steps, start_step, config.batch_size)
    if total_steps == 0 and config.eval.at_end and (evaluator or predictor) is not None:
        run_eval(0, state)  # evaluation only: configs/frozen_eval.py
    watcher = preemption.Watcher()
    acc, acc_n = None, 0  # metrics summed on device over the logging interval
    logged = {k: int(v) for k, v in guard.metrics(state["guard"]).items()}  # at the last log
    prev = None  # (step, metrics) of the previous step: checked one step late, no stall
    preempted, step = False, start_step
    try:
        while step < total_steps:
            step += 1
            state, metrics = train_step(state, next(data_iter))
            means = {k: v for k, v in metrics.items() if k not in guard.TOTALS}
            acc = means if acc is None else jax.tree.map(jnp.add, acc, means)
            acc_n += 1
            progress.update(step)
            checked = prev if step < total_steps else (step, metrics)
            prev = (step, metrics)
            if checked is not None and int(checked[1]["skip_run"]) >= config.guard.max_skips:
                meta = {"rollbacks": meta["rollbacks"] + 1}
                good = _rollback_target(ckpt, config.guard, meta["rollbacks"], *checked)
                ckpt.delete_after(good)
                _, state, _, _ = ckpt.restore(abstract_sh, make_data_iter)
                data_iter = make_data_iter(meta)
                step, acc, acc_n, prev = good, None, 0, None
                logged = {k: int(v) for k, v in guard.metrics(state["guard"]).items()}
                progress.close()
                progress = Progress(total_steps, step, config.batch_size)
                continue
            if step == 1 or _every(step, config.log_every_steps) or step == total_steps:
                host = {k: float(v) / acc_n for k, v in jax.device_get(acc).items()}
                totals = {k: int(metrics[k]) for k in guard.TOTALS}
                host.update(totals, lr=float(metrics["lr"]), epoch=step / steps_per_epoch)
                host["bad_examples"] = data_iter.bad_examples  # unreadable images skipped
                writer.write(step, progress.report(step, host))
                _warn_guard(logged, totals, step - acc_n + 1, step, config.guard.spike_factor)
                logged, acc, acc_n = totals, None, 0
            tic = time.perf_counter()
            if viz_fn is not None and (_every(step, viz_every) or step == total_steps):
                save_viz(step, state["params"])
            if (evaluator or predictor) is not None and (
                _every(step, eval_every) or (step == total_steps and config.eval.at_end)
            ):
                run_eval(step, state)
            preempted = watcher.notified or ckpt.reached_preemption(step)
            ckpt.save(step, state, data_iter, meta, force=preempted or step == total_steps)
            progress.exclude(time.perf_counter() - tic)
            if preempted:
                logging.warning("Preempted: checkpoint saved at step %d; exiting.", step)
                break
    finally:  # pending async checkpoint writes complete even when training is interrupted
        watcher.close()
        progress.close()
        ckpt.wait()
        ckpt.close()
        writer.close()
    if preempted:
        return {**summary, "preempted": True, "preempted_at": step}
    if "top1" in summary:
        logging.info(
            "Final (step %s, %s): top-1 %.4f, top-5 %.4f on %d examples",
            summary["step"],
            summary["protocol"],
            summary["top1"],
            summary["top5"],
            summary["num_examples"],
        )
    if "mAP" in summary:
        logging.info(
            "Final (step %s, %s): mAP %.4f on %d examples",
            summary["step"],
            summary["protocol"],
            summary["mAP"],
            summary["num_examples"],
        )
    for metric in ("top1", "mAP"):
        if f"knn_{metric}" in summary:
            logging.info(
                "Final (step %s, %s features): kNN %s %.4f, linear probe %s %.4f",
                summary["step"],
                summary["features"],
                metric,
                summary[f"knn_{metric}"],
                metric,
                summary[f"linear_{metric}"],
            )
    return summary


def _rollback_target(
    ckpt: checkpoint.Checkpointer, g: ml_collections.ConfigDict, rollback: int, step: int, metrics
) -> int:
    """After `g.max_skips` consecutive non-finite steps ending at `step`: the checkpoint
    step to roll back to (rollback number `rollback`), or NonFiniteError naming it."""
    run = int(metrics["skip_run"])
    ckpt.wait()
    good = max((s for s in ckpt.all_steps() if s <= step - run), default=None)
    where = f"step {good} in {ckpt.directory}" if good is not None else "none"
    if g.on_max_skips == "stop" or good is None or rollback > g.max_rollbacks:
        raise NonFiniteError(
            f"{run} consecutive steps (to step {step}) had a non-finite loss or gradient "
            f"(config.guard.max_skips={g.max_skips}); last good checkpoint: {where}. Lower "
            "the lr, enable config.optim.grad_clip, or set config.guard.on_max_skips='rollback'."
        )
    logging.warning(
        "%d consecutive non-finite steps to step %d: rolling back to %s with a fresh data "
        "order (rollback %d of %d).",
        run,
        step,
        where,
        rollback,
        g.max_rollbacks,
    )
    return good


def _warn_guard(before: dict, now: dict, first: int, last: int, spike_factor: float) -> None:
    """Logs the non-finite steps skipped and loss spikes seen in steps first..last."""
    events = (
        ("skipped_total", "step(s) skipped for a non-finite loss or gradient"),
        ("spikes_total", f"loss spike(s) (> {spike_factor:.1f}x the running mean)"),
    )
    for key, what in events:
        if now[key] > before[key]:
            logging.warning(
                "%d %s in steps %d-%d (%d in total).",
                now[key] - before[key],
                what,
                first,
                last,
                now[key],
            )
