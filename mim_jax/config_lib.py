"""Reading durations from configs and checking a config before anything compiles."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections

DTYPES = ("auto", "float32", "bfloat16")
VIDEO_SOURCES = ("moving_fashion_mnist", "video_list", "video_folder", "video_array_record")
IMAGE_SOURCES = ("fashion_mnist", "tfds", "folder", "array_record")
AUDIO_SOURCES = ("spoken_keywords", "audio_folder", "audio_list", "tfds_audio")
DATA_SOURCES = (*IMAGE_SOURCES, "synthetic", *VIDEO_SOURCES, *AUDIO_SOURCES)
VIDEO_CROPS = ("multiscale", "rrc")
CLIP_SAMPLING = ("stride", "span", "segments")
POOLS = ("cls", "mean")
ON_MAX_SKIPS = ("stop", "rollback")
# Keys a resumed run may change without changing what it computes.
RESUMABLE_CHANGES = (
    "allow_config_change",
    "resume",
    "init_from",
    "log_every_steps",
    "ckpt.",
    "eval.",
    "viz.",
    "mesh.",
    "model.attention",  # the same attention computed by another kernel
    "data.root",
    "data.tfds_data_dir",
    "data.num_workers",
    "data.read_threads",
    "data.device_prefetch",
    "data.max_bad_fraction",
    "data.index_cache_dir",
)

# Keys added after runs were saved, with the value that computes what those runs computed:
# a saved config.json without one of them resumes without a "changed config" complaint.
ADDED_KEYS = {
    "optim.name": "adamw",
    "optim.momentum": 0.9,
    "optim.trust_coefficient": 0.001,
    "optim.layer_decay": 1.0,
    "optim.ema_decay": 0.0,
    "data.randaugment": "",
    "model.backbone": "vit",
    "model.loss": "softmax",
    "model.mask_t_prob": 0.0,
    "model.mask_f_prob": 0.0,
    "model.head_dropout": 0.0,
    "data.clip_sampling": "stride",
    "data.test_clips": 1,
    "data.test_crops": 1,
    "data.mixup": 0.0,
    "data.freqm": 0,
    "data.timem": 0,
    "data.balanced_sampling": False,
    "data.epoch_len": 0,
    "model.attention": "xla",
}


def add_config_root_to_path(argv: list[str]) -> None:
    """Make `from configs import common` work for `--config=<repo>/configs/x.py` from any cwd."""
    for i, arg in enumerate(argv):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        if path:
            config_dir = os.path.dirname(os.path.abspath(path.split(":", 1)[0]))
            sys.path.insert(0, os.path.dirname(config_dir))


def get_steps(
    cfg: ml_collections.ConfigDict, name: str, steps_per_epoch: int, where: str = "config"
) -> int | None:
    """`cfg.<name>_steps`, else `cfg.<name>_epochs` converted to steps; None if neither.

    Steps win over epochs, so `--config.total_steps=2` overrides a recipe's epochs.
    """
    steps, epochs = cfg.get(f"{name}_steps"), cfg.get(f"{name}_epochs")
    if steps is not None:
        if steps < 0:
            raise ValueError(f"{where}.{name}_steps must be >= 0, got {steps}")
        return int(steps)
    if epochs is not None:
        if epochs < 0:
            raise ValueError(f"{where}.{name}_epochs must be >= 0, got {epochs}")
        return round(epochs * steps_per_epoch)
    return None


def input_shape(data: ml_collections.ConfigDict) -> tuple[int, ...]:
    """One example's shape: (H, W, C) images, (T, H, W, C) clips (data.num_frames > 0) or
    (frames, mel bins, 1) log-mel spectrograms (data.num_mel_bins > 0)."""
    if data.num_mel_bins:
        return (data.target_length, data.num_mel_bins, 1)
    image = (data.image_size, data.image_size, data.channels)
    return (data.num_frames, *image) if data.num_frames else image


def compute_dtype(name: str) -> jnp.dtype:
    """The compute dtype for `config.dtype`; "auto" is bfloat16 on GPU/TPU, float32 on CPU.

    Params, optimizer state and the loss stay float32 either way (mixed precision).
    """
    if name == "auto":
        return jnp.dtype(jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16)
    return jnp.dtype(name)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def check_attention(config: ml_collections.ConfigDict) -> None:
    """config.model.attention is one of attention.IMPLEMENTATIONS, and "cudnn" only where
    cuDNN flash attention can run: an NVIDIA GPU, bf16/fp16 compute, head dims that are
    multiples of 8 up to the GPU's limit."""
    from mim_jax.models import attention

    value = config.model.get("attention", "auto")
    valid = attention.IMPLEMENTATIONS
    _check(value in valid, f"config.model.attention={value!r}; valid: {valid}")
    if value != "cudnn":
        return
    _check(
        attention.on_cuda(),
        f"config.model.attention='cudnn' needs an NVIDIA GPU; this backend is "
        f"{jax.default_backend()!r}: use 'auto' or 'xla'",
    )
    dtype = compute_dtype(config.dtype)
    _check(
        dtype in attention.CUDNN_DTYPES,
        f"config.model.attention='cudnn' needs bf16 compute; config.dtype={config.dtype!r} "
        f"computes in {dtype.name}: set config.dtype='bfloat16' or attention 'auto'",
    )
    m, limit = config.model, attention.cudnn_max_head_dim()
    for width, heads in (("width", "num_heads"), ("decoder_width", "decoder_heads")):
        if m.get(width) and m.get(heads):
            head_dim = m[width] // m[heads]
            _check(
                head_dim % 8 == 0 and head_dim <= limit,
                f"config.model.attention='cudnn': config.model.{width}/{heads} = {head_dim} "
                f"per head; cuDNN needs a multiple of 8 up to {limit} (use 'auto' or 'xla')",
            )


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Value checks the config lock cannot do; raises ValueError naming the key."""
    from mim_jax import methods  # methods import this module (compute_dtype)

    methods.check_name(config.method)
    _check(config.dtype in DTYPES, f"config.dtype={config.dtype!r}; valid: {DTYPES}")
    from mim_jax.models.vit import REMAT_POLICIES

    remat = config.model.get("remat", "none")
    _check(remat in REMAT_POLICIES, f"config.model.remat={remat!r}; valid: {list(REMAT_POLICIES)}")
    check_attention(config)
    if config.method == "classifier":
        from mim_jax.methods import classifier

        m = config.model
        classifier.check_model(m.pool, m.head, m.get("backbone", "vit"))
        _check(
            m.get("loss", "softmax") in classifier.LOSSES,
            f"config.model.loss={m.get('loss')!r}; valid: {classifier.LOSSES}",
        )
    d = config.data
    _check(d.name in DATA_SOURCES, f"config.data.name={d.name!r}; valid: {DATA_SOURCES}")
    _check(
        d.name
        not in ("folder", "array_record", "video_folder", "video_array_record", "audio_folder")
        or bool(d.root),
        f"config.data.name={d.name!r} needs config.data.root (the dataset directory)",
    )
    _check(d.num_frames >= 0, f"config.data.num_frames must be >= 0, got {d.num_frames}")
    _check(
        d.clip_sampling in CLIP_SAMPLING,
        f"config.data.clip_sampling={d.clip_sampling!r}; valid: {CLIP_SAMPLING}",
    )
    _check(
        d.test_clips >= 1 and d.test_crops >= 1,
        f"config.data.test_clips and test_crops must be >= 1, got {d.test_clips}, {d.test_crops}",
    )
    _check(0.0 <= d.mixup <= 1.0, f"config.data.mixup must be in [0, 1], got {d.mixup}")
    for key in ("freqm", "timem", "epoch_len"):
        _check(d[key] >= 0, f"config.data.{key} must be >= 0 (0 = off), got {d[key]}")
    _check(
        d.num_mel_bins > 0 or not (d.mixup or d.freqm or d.timem),
        "config.data.mixup / freqm / timem are audio augmentations (Audio-MAE) and need "
        "config.data.num_mel_bins > 0; image mixup is config.model.mixup",
    )
    _check(d.num_mel_bins >= 0, f"config.data.num_mel_bins must be >= 0, got {d.num_mel_bins}")
    takes = methods.modality(config)
    has = "audio" if d.num_mel_bins > 0 else "video" if d.num_frames > 0 else "image"
    how = {
        "image": "images: config.data.num_frames and num_mel_bins must be 0",
        "video": "clips: set config.data.num_frames > 0",
        "audio": "spectrograms: set config.data.num_mel_bins > 0",
    }
    _check(takes == has, f"config.method={config.method!r} takes {how[takes]}")
    held = {**dict.fromkeys(IMAGE_SOURCES, "image"), **dict.fromkeys(VIDEO_SOURCES, "video")}
    held.update(dict.fromkeys(AUDIO_SOURCES, "audio"))
    _check(
        held.get(d.name, takes) == takes,
        f"config.data.name={d.name!r} holds {held.get(d.name)} data; "
        f"config.method={config.method!r} takes {takes} data",
    )
    _check(
        d.name not in ("tfds", "tfds_audio") or bool(d.tfds_name),
        f"config.data.name={d.name!r} needs config.data.tfds_name",
    )
    if takes == "video":
        _check(d.sampling_rate >= 1, "config.data.sampling_rate must be >= 1")
        _check(d.num_samples >= 1, "config.data.num_samples must be >= 1")
        _check(
            d.video_crop in VIDEO_CROPS,
            f"config.data.video_crop={d.video_crop!r}; valid: {VIDEO_CROPS}",
        )
        per_process = config.batch_size // jax.process_count()
        _check(
            per_process % d.num_samples == 0,
            f"config.batch_size={config.batch_size} gives {per_process} clips per process, "
            f"not divisible by config.data.num_samples={d.num_samples} (clips per video)",
        )
    if takes == "audio":
        _check(d.num_frames == 0, "config.data.num_frames must be 0 for spectrograms")
        _check(d.channels == 1, "config.data.channels must be 1 for spectrograms")
        p = config.model.get("patch_size")
        _check(
            not p or (d.target_length % p == 0 and d.num_mel_bins % p == 0),
            f"config.data.target_length={d.target_length} and num_mel_bins={d.num_mel_bins} "
            f"must be multiples of config.model.patch_size={p}",
        )
        for key in ("mask_t_prob", "mask_f_prob"):
            value = config.model.get(key, 0.0)
            _check(0 <= value < 1, f"config.model.{key} must be in [0, 1), got {value}")
        _check(d.target_length > 0, "config.data.target_length (frames) must be > 0")
        _check(d.sample_rate > 0, "config.data.sample_rate must be > 0")
    _check(0 <= d.max_bad_fraction <= 1, "config.data.max_bad_fraction must be in [0, 1]")
    _check(
        len(d.mean) == len(d.std) == d.channels,
        f"config.data.mean/std need one value per channel ({d.channels}), "
        f"got {len(d.mean)} and {len(d.std)}",
    )
    _check(
        config.total_steps is not None or config.total_epochs is not None,
        "Set config.total_steps or config.total_epochs.",
    )
    accum = config.grad_accum_steps
    _check(accum >= 1, f"config.grad_accum_steps must be >= 1, got {accum}")
    _check(
        config.batch_size % (accum * num_devices) == 0,
        f"config.batch_size={config.batch_size} must be divisible by grad_accum_steps ({accum}) "
        f"x device count ({num_devices})",
    )
    from mim_jax import optim

    o = config.optim
    _check(
        o.schedule in optim.SCHEDULES,
        f"config.optim.schedule={o.schedule!r}; valid: {optim.SCHEDULES}",
    )
    _check(o.name in optim.OPTIMIZERS, f"config.optim.name={o.name!r}; valid: {optim.OPTIMIZERS}")
    _check(
        0 < o.layer_decay <= 1, f"config.optim.layer_decay must be in (0, 1], got {o.layer_decay}"
    )
    _check(
        o.schedule == "multistep" or not (o.milestone_epochs or o.milestone_steps),
        "config.optim.milestone_epochs/steps need config.optim.schedule='multistep'",
    )
    _check(config.eval.features in POOLS, f"config.eval.features must be one of {POOLS}")
    _check(config.log_every_steps >= 1, "config.log_every_steps must be >= 1")
    _check(
        config.optim.grad_clip is None or config.optim.grad_clip > 0,
        "config.optim.grad_clip must be > 0 (or None to disable)",
    )
    g = config.guard
    _check(
        g.on_max_skips in ON_MAX_SKIPS,
        f"config.guard.on_max_skips={g.on_max_skips!r}; valid: {ON_MAX_SKIPS}",
    )
    _check(g.max_skips >= 1, f"config.guard.max_skips must be >= 1, got {g.max_skips}")
    _check(g.spike_warmup_steps >= 1, "config.guard.spike_warmup_steps must be >= 1")
    _check(0 < g.spike_ema_decay < 1, "config.guard.spike_ema_decay must be in (0, 1)")
    _check(config.ckpt.keep >= 1, f"config.ckpt.keep must be >= 1, got {config.ckpt.keep}")
    _check(
        config.ckpt.every_minutes is None or config.ckpt.every_minutes > 0,
        "config.ckpt.every_minutes must be > 0 (or None)",
    )


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: dict, new: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved config.json (`old`) and `new`, except those
    a resumed run may change (RESUMABLE_CHANGES); as "key: old -> new" lines."""
    b = _flatten(json.loads(new.to_json_best_effort()))  # tuples -> lists, as in the file
    a = {**{k: v for k, v in ADDED_KEYS.items() if k in b}, **_flatten(old)}
    changed = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) and not any(
            key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_CHANGES
        ):
            changed.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return changed
