"""SIGTERM (what TPU VMs, SLURM and Kubernetes send before killing a job) as a request to
checkpoint at the next step boundary and exit cleanly."""

import signal
import threading

import jax
from absl import logging


class Watcher:
    """Notices SIGTERM in a single-process run.

    Multi-process runs (after `jax.distributed.initialize`) leave SIGTERM to JAX's
    preemption service, which makes every process see the notice at the same step
    (`Checkpointer.reached_preemption`); installing a handler here would hide it.
    A second SIGTERM kills the process at once, as without this watcher.
    """

    def __init__(self):
        self.notified = False
        self._previous = None
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        logging.warning("SIGTERM: saving a checkpoint at the next step boundary, then exiting.")
        self.notified = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
