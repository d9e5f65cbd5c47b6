"""Process-0 metric writers (TensorBoard events + JSON lines) and the progress display."""

import datetime
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging


def _scalar(v) -> float:
    return float(np.asarray(v))


class MetricWriter:
    """Writes scalars to `<workdir>/metrics.jsonl` and TensorBoard events in `<workdir>/tb`.

    Only process 0 writes; other processes get a writer that does nothing.
    """

    def __init__(self, workdir: str | Path, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = self._jsonl = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # events without TensorFlow

            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(workdir / "tb"), flush_secs=30)
            self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")

    def write(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        values = {k: _scalar(v) for k, v in scalars.items()}
        for k, v in values.items():
            self._tb.add_scalar(k, v, step)
        self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


def _terminal_columns() -> int:
    """Width of the terminal on stderr; 0 when stderr is not a (sized) terminal."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError):
        return 0


def format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class Progress:
    """Live progress (step/total, loss, samples/s, ETA): a tqdm bar on a terminal, periodic
    log lines otherwise. `update` is called every step; `report` on log steps."""

    def __init__(self, total_steps: int, start_step: int, batch_size: int, enabled: bool = True):
        self.total, self.batch_size = total_steps, batch_size
        self._last_step, self._last_time = start_step, time.perf_counter()
        self._excluded = 0.0  # seconds spent on evals/checkpoints since the last report
        self.enabled = enabled and jax.process_index() == 0
        self._bar = None
        if self.enabled and _terminal_columns() > 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def update(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def report(self, step: int, metrics: dict) -> dict:
        """Adds throughput to `metrics` (for the writers) and shows them."""
        now = time.perf_counter()
        steps = step - self._last_step
        rate = steps / max(now - self._last_time - self._excluded, 1e-9)
        self._last_step, self._last_time, self._excluded = step, now, 0.0
        metrics = {**metrics, "steps_per_sec": rate, "samples_per_sec": rate * self.batch_size}
        eta = format_eta((self.total - step) / max(rate, 1e-9))
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{_scalar(metrics['loss']):.4f}",
                samples_per_s=f"{rate * self.batch_size:.0f}",
                refresh=False,
            )
            self._bar.update(step - self._bar.n)
        elif self.enabled:
            logging.info(
                "step %d/%d  loss %.4f  lr %.3g  %.0f samples/s  ETA %s",
                step,
                self.total,
                _scalar(metrics["loss"]),
                _scalar(metrics.get("lr", 0.0)),
                rate * self.batch_size,
                eta,
            )
        return metrics

    def exclude(self, seconds: float) -> None:
        """Leave time spent outside training steps (evals, checkpoints) out of the rate."""
        self._excluded += seconds

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _LibraryInfoFilter:
    """Drops INFO/DEBUG records from Orbax, grain and JAX internals (kept: warnings, ours)."""

    _NOISY = ("/orbax/", "/grain/", "/jax/_src/", "/etils/")

    def filter(self, record) -> bool:
        return record.levelno >= 30 or not any(p in record.pathname for p in self._NOISY)


def quiet_library_logs() -> None:
    """Keep the log readable: library INFO chatter (per-save Orbax lines) is filtered out."""
    import logging as pylogging

    from absl import logging as absl_logging

    handler = absl_logging.get_absl_handler()
    if not any(isinstance(f, _LibraryInfoFilter) for f in handler.filters):
        handler.addFilter(_LibraryInfoFilter())
    for name in ("jax._src.xla_bridge", "jax._src.distributed"):
        pylogging.getLogger(name).setLevel(pylogging.WARNING)
