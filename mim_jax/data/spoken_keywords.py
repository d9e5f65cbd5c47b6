"""Spoken keywords: the embedded default audio dataset, synthesised with espeak-ng.

Speech Commands' ten keywords, each spoken by eight English accents x voice variants x
three speeds, at one of three pitches (all nine speed-pitch pairs occur). Train and test
use disjoint voice variants, so the test set has unseen "speakers". As in Speech
Commands, each word sits at a random offset in a clip of up to CLIP_SECONDS, over
background noise at a random SNR (both seeded per utterance). Generated once (under a
minute) into `root` as 16 kHz 16-bit wav files, `root/<split>/<word>/<voice>_<speed>.wav`,
then read like any audio folder. Needs the Debian package `espeak-ng`.
"""

import concurrent.futures
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr
from absl import logging

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)  # fmt: skip
VARIANTS = {  # espeak-ng voice variants ("" = the accent's own voice)
    "train": ("", "m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4"),
    "test": ("m7", "f5"),
}
SPEEDS = (130, 165, 200)  # words per minute
PITCHES = (30, 50, 70)  # 0-99
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.25  # words (0.4-1.2 s) start at a uniform offset that keeps them inside
SNR_DB = (5.0, 25.0)  # white background noise, uniform in dB
DEFAULT_ROOT = Path("~/.cache/mim_jax/spoken_keywords")
VERSION = 3  # bump when the recipe above changes (regenerates the cache)
ESPEAK_HELP = (
    "The spoken-keywords dataset is synthesised with espeak-ng, which is not installed: "
    "`sudo apt-get install espeak-ng` (Debian/Ubuntu), or point config.data.root at a "
    "generated copy."
)


def utterances(split: str) -> list[tuple[str, str, int, int]]:
    """(word, voice, speed, pitch) of every utterance in `split`, in a fixed order."""
    if split not in VARIANTS:
        raise ValueError(f"spoken_keywords split {split!r}; valid: {sorted(VARIANTS)}")
    out = []
    for word in WORDS:
        combos = itertools.product(ACCENTS, VARIANTS[split], SPEEDS)
        for i, (accent, variant, speed) in enumerate(combos):
            voice = f"{accent}+{variant}" if variant else accent
            pitch = PITCHES[(i + i // len(SPEEDS)) % len(PITCHES)]  # every (speed, pitch) pair
            out.append((word, voice, speed, pitch))
    return out


def _synthesise(word: str, voice: str, speed: int, pitch: int, seed: tuple, out: Path) -> None:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", tmp.name, word]
        subprocess.run(cmd, check=True, capture_output=True)
        samples, rate = soundfile.read(tmp.name, dtype="float32")
    speech = soxr.resample(samples, rate, SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    length = max(len(speech), int(CLIP_SECONDS * SAMPLE_RATE))
    clip = np.zeros(length, np.float32)
    start = int(rng.integers(length - len(speech) + 1))
    clip[start : start + len(speech)] = speech
    snr = rng.uniform(*SNR_DB)
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (snr / 20)
    clip += rng.normal(0.0, noise_rms, length).astype(np.float32)
    soundfile.write(out, np.clip(clip, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def generate(root: str | os.PathLike, split: str) -> Path:
    """Writes `root/<split>` unless a complete copy is there; returns that directory."""
    root = Path(root).expanduser()
    target = root / split
    manifest = {"version": VERSION, "count": len(utterances(split))}
    if _complete(target, manifest):
        return target
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError(ESPEAK_HELP)
    logging.info("Synthesising %d spoken keywords into %s", manifest["count"], target)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{split}-", dir=root))
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, (word, voice, speed, pitch) in enumerate(utterances(split)):
            (staging / word).mkdir(exist_ok=True)
            out = staging / word / f"{voice.replace('+', '_')}_{speed}.wav"
            seed = (VERSION, sorted(VARIANTS).index(split), i)
            jobs.append(pool.submit(_synthesise, word, voice, speed, pitch, seed, out))
        for job in jobs:
            job.result()
    (staging / "manifest.json").write_text(json.dumps(manifest))
    if _complete(target, manifest):  # another process finished meanwhile: keep its copy
        shutil.rmtree(staging, ignore_errors=True)
        return target
    if target.exists():  # an older version's copy
        shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(directory: Path, manifest: dict) -> bool:
    done = directory / "manifest.json"
    try:
        return json.loads(done.read_text()) == manifest
    except (OSError, ValueError):
        return False
