"""Writes fixtures/kaldi_fbank.npz: torchaudio's Kaldi fbank, called exactly as the official
Audio-MAE `dataset.py` does, on a speech clip and on seeded noise (the reference for
tests/data/test_fbank.py). Not run by the tests; needs torch, torchaudio, soundfile,
soxr and espeak-ng:  python tests/data/make_fbank_fixture.py
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torchaudio.compliance import kaldi

OUT = Path(__file__).parent / "fixtures" / "kaldi_fbank.npz"
NOISE_SEED, NOISE_SECONDS = 0, 1


def official_fbank(waveform: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    w = torch.from_numpy(waveform.astype(np.float32))[None]
    w = w - w.mean()
    return kaldi.fbank(
        w, htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10,
    ).numpy()  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        text = "yes no up down left right on off stop go"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(wav), text], check=True)
        speech, sr = sf.read(wav, dtype="float32")
    speech = soxr.resample(speech, sr, 16000)
    speech_int16 = np.round(np.clip(speech, -1, 1) * 32767).astype(np.int16)
    noise = np.random.default_rng(NOISE_SEED).uniform(-1, 1, 16000 * NOISE_SECONDS)
    np.savez_compressed(
        OUT,
        speech_int16=speech_int16,
        speech_fbank=official_fbank(speech_int16 / 32768.0),
        noise_fbank=official_fbank(noise.astype(np.float32)),
    )
    print("wrote", OUT)


if __name__ == "__main__":
    main()
