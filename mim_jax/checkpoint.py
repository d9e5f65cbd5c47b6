"""Orbax checkpoints holding the train state and the grain iterator state together."""

from pathlib import Path

import grain
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class Checkpointer:
    """Async, atomic, keep-last-N checkpoints under `<workdir>/checkpoints/<step>`.

    Each step holds the train state (params, optimizer state, step, rng) and the data
    iterator's position, so a restored run continues on the same examples.
    """

    def __init__(self, workdir: str | Path, keep: int):
        directory = epath.Path(workdir) / "checkpoints"
        # Orbax needs absolute paths; a relative local workdir is taken from the cwd.
        self.directory = directory if "://" in str(directory) else directory.absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=("state", "data"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iter=None) -> None:
        """Starts an async save of `step`; training goes on while it is written."""
        items = {"state": ocp.args.StandardSave(state)}
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, abstract_state, data_iter=None, step: int | None = None):
        """The state at `step` (default: latest) laid out as `abstract_state`'s shardings;
        `data_iter` is moved to the saved position in place. None if no checkpoint exists."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        logging.info("Restored checkpoint step %d from %s", step, self.directory)
        return restored["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
