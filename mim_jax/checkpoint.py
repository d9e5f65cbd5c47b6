"""Orbax checkpoints: train state, grain iterator position and run metadata, saved together.

Layout: `<workdir>/checkpoints/<step>/{state,data,meta}`. Orbax makes every step atomic
(a tmp dir renamed on commit locally, `commit_success.txt` on GCS); its policies decide
when to save (every N steps / minutes, on preemption) and which steps to keep.
"""

import datetime
import math
from collections.abc import Callable, Mapping
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from mim_jax.models import posemb

policies = ocp.checkpoint_managers


def as_dir(uri: str | epath.PathLike) -> epath.Path:
    """An absolute epath (Orbax refuses relative paths); URIs such as gs:// pass through."""
    path = epath.Path(uri)
    return path if "://" in str(uri) else path.absolute()


def checkpoints_dir(uri: str | epath.PathLike) -> epath.Path:
    """`<uri>/checkpoints` when `uri` is a workdir, else `uri` itself (a checkpoints dir)."""
    path = as_dir(uri)
    return path / "checkpoints" if (path / "checkpoints").exists() else path


class Checkpointer:
    """Async, atomic checkpoints of one run: keep the last `keep` steps plus every
    `keep_every`-th; save every `every_steps` steps and/or `every_minutes` minutes."""

    def __init__(
        self,
        directory: str | epath.PathLike,
        keep: int = 2,
        keep_every: int | None = None,
        every_steps: int | None = None,
        every_minutes: float | None = None,
        read_only: bool = False,
    ):
        self.directory = as_dir(directory)
        keep_policy = policies.LatestN(keep)
        if keep_every:
            keep_policy = policies.AnyPreservationPolicy(
                [keep_policy, policies.EveryNSteps(keep_every)]
            )
        save_policy = [policies.PreemptionCheckpointingPolicy()]  # multi-host sync point
        if every_steps:
            save_policy.append(policies.FixedIntervalPolicy(every_steps))
        if every_minutes:
            seconds = max(1, round(every_minutes * 60))
            save_policy.append(policies.ContinuousCheckpointingPolicy(seconds))
        self._options = ocp.CheckpointManagerOptions(
            create=not read_only,
            read_only=read_only,
            preservation_policy=None if read_only else keep_policy,
            save_decision_policy=policies.AnySavePolicy(save_policy),
        )
        self.manager = self._new_manager()

    def _new_manager(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(
            self.directory, item_names=("state", "data", "meta"), options=self._options
        )

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step once any process got a preemption notice
        (needs `jax.distributed.initialize`; single-process runs use `preemption.Watcher`)."""
        return self.manager.reached_preemption(step)

    def save(self, step: int, state, data_iter, meta: Mapping[str, Any], force=False) -> bool:
        """Saves `step` if a policy says so (or `force`); async: training goes on while
        the arrays are written. Returns whether a save started."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iter),
            meta=ocp.args.JsonSave(dict(meta)),
        )
        return self.manager.save(step, args=args, force=force)

    def read_meta(self, step: int) -> dict:
        """The run metadata of `step` (e.g. the data-order seed); {} when absent."""
        meta_dir = self.directory / str(step) / "meta"
        if not meta_dir.exists():
            return {}
        return dict(
            self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        )

    def restore(
        self, abstract_state, make_data_iter: Callable[[dict], Any]
    ) -> tuple[int, Any, Any, dict] | None:
        """Newest restorable step as (step, state, data_iter, meta), or None if there is none.

        `abstract_state` is a tree of ShapeDtypeStructs whose shardings (any mesh) the
        arrays are laid out to. `make_data_iter(meta)` builds the iterator whose position
        is restored. A step that fails to restore (truncated or missing files) is skipped
        with a warning and moved to `<workdir>/corrupt_checkpoints/`, once an older step has
        restored; if none restores, the errors of all steps are raised.
        """
        failures: list[tuple[int, Exception]] = []
        for step in reversed(self.all_steps()):
            try:
                meta = self.read_meta(step)
                data_iter = make_data_iter(meta)
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        data=grain.checkpoint.CheckpointRestore(data_iter),
                    ),
                )
            except Exception as e:  # any damage to a step: try the next older one
                logging.warning(
                    "Checkpoint step %d in %s is unreadable: %s", step, self.directory, e
                )
                failures.append((step, e))
                continue
            if failures:
                self._set_aside([s for s, _ in failures])
            logging.info("Restored checkpoint step %d from %s", step, self.directory)
            return step, restored["state"], data_iter, meta
        if failures:
            report = "\n".join(f"  step {s}: {type(e).__name__}: {e}" for s, e in failures)
            raise RuntimeError(
                f"No checkpoint in {self.directory} could be restored (did the model or config "
                f"change?):\n{report}"
            )
        return None

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable steps out of the manager's way (kept for inspection); a
        read-only manager (another run's checkpoints) only skips them."""
        if self._options.read_only:
            return
        if jax.process_index() == 0:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            aside = self.directory.parent / "corrupt_checkpoints"
            aside.mkdir(parents=True, exist_ok=True)
            for step in steps:
                target = aside / f"{step}-{stamp}"
                (self.directory / str(step)).rename(target)
                logging.warning(
                    "Skipped unreadable checkpoint step %d; moved it to %s", step, target
                )
        self.reload()

    def delete_after(self, step: int) -> None:
        """Deletes the steps newer than `step` (a rollback abandons them)."""
        for s in self.all_steps():
            if s > step:
                self.manager.delete(s)
                logging.warning("Rollback: deleted checkpoint step %d", s)
        self.reload()

    def reload(self) -> None:
        self.wait()
        self.manager.close()
        self.manager = self._new_manager()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def restore_params(uri: str, params) -> tuple[Any, dict[str, list[str]]]:
    """Weights-only init from a workdir, a checkpoints dir, a step dir or an export dir.

    Each leaf of `params` (freshly initialized, sharded) is replaced by the source's leaf
    of the same path and shape ("loaded"); the others keep their init ("reinitialized");
    source leaves that match nothing are "skipped". A `pos_embed` of another square grid
    (cls row first) is resampled to this one ("resampled", also counted as loaded).
    Returns (params, report).
    """
    source = _read_source_params(uri)  # {path: np.ndarray}
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    report = {"loaded": [], "reinitialized": [], "skipped": [], "resampled": []}
    leaves = []
    for path, init in flat:
        key = path_str(path)
        got = source.get(key)
        if got is not None and key.endswith("pos_embed"):
            resampled = _resample_pos_embed(got, tuple(init.shape))
            if resampled is not None and resampled.shape != got.shape:
                report["resampled"].append(f"{key} ({got.shape} -> {resampled.shape})")
            got = got if resampled is None else resampled
        if got is not None and tuple(got.shape) == tuple(init.shape):
            leaves.append(jax.device_put(got.astype(init.dtype), init.sharding))
            report["loaded"].append(key)
        else:
            leaves.append(init)
            report["reinitialized"].append(
                key if got is None else f"{key} (shape {got.shape} != {init.shape})"
            )
    wanted = {path_str(p) for p, _ in flat}
    report["skipped"] = sorted(k for k in source if k not in wanted)
    return jax.tree_util.tree_unflatten(treedef, leaves), report


def _resample_pos_embed(table: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """`table` [..., 1 + h*h, D] on the square grid `shape` asks for, or None when either
    is not one cls row plus a square grid of the same width."""
    if table.ndim != len(shape) or table.shape[-1] != shape[-1]:
        return None
    old, new = math.isqrt(table.shape[-2] - 1), math.isqrt(shape[-2] - 1)
    if old * old != table.shape[-2] - 1 or new * new != shape[-2] - 1:
        return None
    return posemb.resample(table, (old, old), (new, new))


def path_str(path, sep: str = "/") -> str:
    """A tree_flatten_with_path path as "encoder/blocks_0/attn/qkv/kernel"."""
    return sep.join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _read_source_params(uri: str) -> dict[str, np.ndarray]:
    """The params of an export dir, a step dir or the latest step of a workdir /
    checkpoints dir, as {"encoder/blocks_0/...": host array}."""
    path = as_dir(uri)
    if not (path / "export.json").exists() and not (path / "state").exists():
        ckpt = Checkpointer(checkpoints_dir(path), read_only=True)
        step = ckpt.latest_step()
        if step is None:
            raise FileNotFoundError(
                f"config.init_from={uri!r}: no checkpoint, step dir or export found there"
            )
        path = ckpt.directory / str(step)
    flat, _ = jax.tree_util.tree_flatten_with_path(read_params(path))
    return {path_str(p): np.asarray(v) for p, v in flat}


def read_params(path: epath.Path) -> dict:
    """The params tree (host arrays) of an export dir or a checkpoint step dir; only the
    params are read, not the optimizer state."""
    if (path / "export.json").exists():
        return _restore_on_host(path / "params", lambda t: t)
    return _restore_on_host(path / "state", lambda t: {"params": t["params"]})["params"]


def read_model_state(path: epath.Path) -> dict:
    """A stateful method's non-param variables (BatchNorm statistics) of a step dir or an
    export, as host arrays."""
    if (path / "export.json").exists():
        return _restore_on_host(path / "model_state", lambda t: t)
    return _restore_on_host(path / "state", lambda t: {"model_state": t["model_state"]})[
        "model_state"
    ]


def _restore_on_host(directory: epath.Path, select: Callable[[dict], dict]) -> dict:
    """The subtree `select(tree)` of a saved pytree, as host NumPy arrays, whatever mesh
    wrote it."""
    checkpointer = ocp.PyTreeCheckpointer()
    subtree = select(checkpointer.metadata(directory).item_metadata.tree)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), subtree)
    return checkpointer.restore(
        directory,
        args=ocp.args.PyTreeRestore(item=subtree, restore_args=restore_args, partial_restore=True),
    )
