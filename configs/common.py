"""The base config (every key the trainer reads) and the `parse_arg` helper.

Method configs start from `get_base_config()` and fill in `config.model` and the recipe.
Durations are given in steps or in epochs: `<name>_steps`, or `<name>_epochs` (steps win
when both are set, so `--config.total_steps=100` overrides a recipe's epochs).
"""

import difflib

import ml_collections
from ml_collections import config_dict

_TRUE = ("1", "true", "yes", "on", "")
_FALSE = ("0", "false", "no", "off")


def _cast(key: str, value: str, default):
    if isinstance(default, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"config arg {key}={value!r}: expected a boolean (true/false)")
    try:
        return type(default)(value)
    except ValueError as e:
        raise ValueError(f"config arg {key}={value!r}: expected {type(default).__name__}") from e


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
    """Parses 'variant=B/16,data=synthetic' into a ConfigDict typed by `spec`'s defaults.

    A bare name sets a boolean to True. Unknown names fail, naming the closest valid ones.
    """
    out = ml_collections.ConfigDict(spec)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in spec:
            close = difflib.get_close_matches(key, spec, n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"Unknown config arg {key!r}; valid: {sorted(spec)}.{hint}")
        out[key] = _cast(key, value.strip(), spec[key])
    return out


def get_base_config() -> ml_collections.ConfigDict:
    """Every key `mim_jax.train` reads, with neutral defaults."""
    c = ml_collections.ConfigDict()
    c.method = "mae"
    c.seed = 0
    c.model = ml_collections.ConfigDict()  # method-specific, filled in by each method config
    # Per transformer block, what the backward pass keeps: "none" (remat off), "full" (only
    # block inputs, the rest recomputed) or "dots" (also the weight matmuls' outputs).
    c.model.remat = "none"
    # Attention kernel of every ViT-family block: "xla", "cudnn" (cuDNN flash attention:
    # NVIDIA GPU, bf16, head dim a multiple of 8) or "auto" (cudnn where it applies, else
    # xla). Swin's window attention always uses XLA.
    c.model.attention = "auto"

    # Data. `name`: fashion_mnist (embedded default), synthetic (random images, no I/O),
    # tfds (any TFDS image dataset through tfds.data_source), folder (root/<split>/<class>/
    # <image>) or array_record (shards from `python -m mim_jax.data.convert`).
    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"
    c.data.root = config_dict.placeholder(str)  # dataset dir (Fashion-MNIST: Debian's default)
    c.data.tfds_name = config_dict.placeholder(str)  # e.g. "imagenet2012"
    c.data.tfds_data_dir = config_dict.placeholder(str)
    # folder: where the file index is cached (default ~/.cache/mim_jax/folder_index)
    c.data.index_cache_dir = config_dict.placeholder(str)
    c.data.train_split = "train"
    c.data.eval_split = "test"
    c.data.image_size = 28
    c.data.channels = 1
    c.data.num_classes = 10
    c.data.mean = (0.2860,)  # per-channel, in [0, 1] units
    c.data.std = (0.3530,)
    # RandomResizedCrop (torchvision's sampling) and horizontal flip for training.
    c.data.crop_scale = (0.2, 1.0)
    c.data.crop_ratio = (3.0 / 4.0, 4.0 / 3.0)
    c.data.flip = True
    # RandAugment policy in timm's notation, e.g. "rand-m9-mstd0.5-inc1"; "" = off.
    c.data.randaugment = ""
    c.data.eval_crop_pct = 1.0  # eval: resize shorter side to size / crop_pct, center crop
    c.data.num_workers = 0  # grain worker processes (0: threads in this process)
    c.data.read_threads = 2
    c.data.device_prefetch = 2  # global batches put on the devices ahead of the step
    # Unreadable images are skipped, logged and counted; more than this fraction of the
    # reads for one batch stops the run (a damaged dataset, not a stray file).
    c.data.max_bad_fraction = 0.5
    c.data.synthetic_examples = 4096  # size of the synthetic source ("an epoch")

    # Video (methods that take clips [T, H, W, C]). `name` also takes moving_fashion_mnist
    # (embedded default, generated from Fashion-MNIST), video_list (`path label` or `path
    # num_frames label` lists of video files or frame folders, as Kinetics/SSv2 in the
    # official repos) and video_array_record (pre-sampled clips, mim_jax.data.convert_video).
    c.data.num_frames = 0  # frames per clip; 0 = images
    c.data.sampling_rate = 4  # take every k-th frame
    c.data.num_samples = 1  # repeated sampling: clips per decoded video (batch counts clips)
    c.data.samples_share_frames = False  # True: the repeats differ only in crop (V2)
    c.data.video_crop = "multiscale"  # multiscale (VideoMAE) | rrc (RandomResizedCrop, MAE-ST)
    c.data.crop_scales = (1.0, 0.875, 0.75, 0.66)  # multiscale crop sides (x short side)
    c.data.min_video_frames = 0  # shorter videos are skipped and counted; 0 = num_frames
    # > 0: a clip spans sampling_rate * num_frames frames *at this fps* (MAE-ST: 30), so
    # 25 fps videos get a fractional stride; 0: an integer stride in frames (VideoMAE).
    c.data.target_fps = 0.0
    # Training clips' frame indices: "stride" (a random start, every sampling_rate-th frame:
    # VideoMAE pretraining), "span" (16 evenly spaced frames of a random span of
    # sampling_rate * num_frames: VideoMAE Kinetics fine-tuning) or "segments" (one random
    # frame per equal segment of the whole video: VideoMAE SSv2 fine-tuning, TSN).
    c.data.clip_sampling = "stride"
    # Final evaluation of a video classifier on test_clips x test_crops views per video
    # (softmax per view, averaged: VideoMAE K400 5 x 3, SSv2 2 x 3); periodic evals during
    # training use the centre view. 1 x 1 = the centre clip and crop only.
    c.data.test_clips = 1
    c.data.test_crops = 1
    c.data.train_list = config_dict.placeholder(str)  # video_list annotation files
    c.data.eval_list = config_dict.placeholder(str)
    c.data.video_frames = 32  # moving_fashion_mnist: frames per generated video

    # Audio (methods that take log-mel spectrograms [target_length, num_mel_bins, 1]).
    # `name` also takes spoken_keywords (embedded default, synthesised with espeak-ng),
    # audio_folder (root/<split>/<class>/<file>), audio_list (AudioSet-style json/csv
    # lists in train_list/eval_list, classes from class_csv) and tfds_audio.
    c.data.num_mel_bins = 0  # Kaldi fbank bins; 0 = not audio
    c.data.sample_rate = 16000  # audio is resampled to this rate
    c.data.target_length = 1024  # frames (10 ms each): zero-padded or cut
    c.data.gain_aug = False  # waveform x Beta(10, 10) + 0.5 (Audio-MAE --roll_mag_aug)
    c.data.time_roll = False  # waveform rolled by a uniform offset (what roll_mag_aug meant)
    c.data.class_csv = ""  # audio_list: index,mid,display_name csv; "": classes of train_list
    # Audio fine-tuning (Audio-MAE dataset.py): with this probability a training clip's
    # waveform is mixed with a random other clip's (lambda ~ Beta(10, 10), labels mixed
    # alike); then one SpecAugment frequency mask of up to `freqm` bins and one time mask
    # of up to `timem` frames (0 = off), set to 0 before normalisation.
    c.data.mixup = 0.0
    c.data.freqm = 0
    c.data.timem = 0
    # Class-balanced sampling (Audio-MAE --weight_sampler): examples drawn with replacement,
    # weight = sum over the example's labels of 1000 / (label count + 0.01), `epoch_len`
    # draws per epoch (0 = the dataset size).
    c.data.balanced_sampling = False
    c.data.epoch_len = 0

    c.batch_size = 256  # global batch per optimizer update (all devices, all micro-batches)
    c.grad_accum_steps = 1  # micro-batches per update (batch_size must divide evenly)
    c.total_steps = config_dict.placeholder(int)
    c.total_epochs = config_dict.placeholder(float)
    # Compute dtype: "auto" = bfloat16 on GPU/TPU, float32 on CPU; params stay float32.
    c.dtype = "auto"

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamw"  # adamw | lars (MAE linear probe) | sgd (CAE attentive probe)
    c.optim.base_lr = 1.5e-4  # lr = base_lr * batch_size / lr_base_batch
    c.optim.lr_base_batch = 256
    c.optim.min_lr = 0.0
    c.optim.schedule = "cosine"  # cosine (to min_lr) | multistep (x milestone_rate per milestone)
    c.optim.milestone_epochs = ()  # multistep: when the lr drops (steps: milestone_steps)
    c.optim.milestone_steps = ()
    c.optim.milestone_rate = 0.1
    c.optim.warmup_base_lr = 0.0  # lr at step 0 of the warmup, scaled like base_lr
    c.optim.warmup_steps = config_dict.placeholder(int)
    c.optim.warmup_epochs = config_dict.placeholder(float)
    c.optim.b1 = 0.9
    c.optim.b2 = 0.95
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.05  # applied to >=2-D params only (not biases/norms)
    c.optim.momentum = 0.9  # lars / sgd
    c.optim.trust_coefficient = 0.001  # lars (MAE util/lars.py)
    # Layer-wise lr decay for ViT fine-tuning: block i gets decay ** (depth - i); 1 = off.
    c.optim.layer_decay = 1.0
    # > 0: also keep an exponential moving average of the weights (decay per step, e.g.
    # 0.9999), evaluated next to the weights themselves (ema_* scores); 0 = off.
    c.optim.ema_decay = 0.0
    c.optim.grad_clip = config_dict.placeholder(float)  # global-norm clip; None: off

    # Device mesh: a `data` and an `fsdp` axis; -1 takes the remaining devices.
    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.fsdp_min_size = 2**18  # params with fewer elements stay replicated

    c.log_every_steps = 50

    # Checkpoints (Orbax, async): saved every N steps/epochs and/or minutes, at the end and
    # on SIGTERM; the last `keep` are kept, plus every `keep_every_*`-th step.
    c.ckpt = ml_collections.ConfigDict()
    c.ckpt.every_steps = config_dict.placeholder(int)
    c.ckpt.every_epochs = config_dict.placeholder(float)
    c.ckpt.every_minutes = config_dict.placeholder(float)
    c.ckpt.keep = 2
    c.ckpt.keep_every_steps = config_dict.placeholder(int)
    c.ckpt.keep_every_epochs = config_dict.placeholder(float)

    # Where a run starts, in this order: the workdir's own latest checkpoint, else `resume`
    # (another run's workdir or checkpoints dir/URI: full state), else `init_from` (weights
    # only, matched by name and shape: a workdir, step dir or export), else scratch.
    c.resume = ""
    c.init_from = ""
    # A workdir holding a checkpoint of a different config refuses to resume unless True.
    c.allow_config_change = False

    # Numerics guard: a step with a non-finite loss or gradient is skipped (counted);
    # `max_skips` consecutive skips stop the run ("stop") or restore the last good
    # checkpoint and continue with a fresh data order ("rollback", at most `max_rollbacks`).
    c.guard = ml_collections.ConfigDict()
    c.guard.max_skips = 10
    c.guard.on_max_skips = "stop"
    c.guard.max_rollbacks = 3
    # A loss above spike_factor x its running mean (EMA, after spike_warmup_steps good
    # steps) is logged as a spike; 0 disables.
    c.guard.spike_factor = 3.0
    c.guard.spike_ema_decay = 0.99
    c.guard.spike_warmup_steps = 100

    # Reconstruction PNGs of fixed eval images (original | masked | recon | recon + visible).
    c.viz = ml_collections.ConfigDict()
    c.viz.every_steps = config_dict.placeholder(int)
    c.viz.every_epochs = config_dict.placeholder(float)
    c.viz.num_images = 8

    # Representation evaluation: kNN and linear probe on frozen encoder features.
    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = config_dict.placeholder(int)
    c.eval.every_epochs = config_dict.placeholder(float)
    c.eval.at_end = True
    c.eval.baselines = False  # also evaluate raw pixels and the encoder at random init
    c.eval.raw_pixels = True  # include raw pixels in the baselines (off for large videos)
    c.eval.features = "cls"  # cls | mean (of patch tokens)
    c.eval.batch_size = 1024
    c.eval.max_train_examples = config_dict.placeholder(int)  # None: the whole train split
    c.eval.max_test_examples = config_dict.placeholder(int)
    c.eval.knn_k = 20
    c.eval.knn_temperature = 0.07
    c.eval.linear_l2 = (1e-5, 1e-4, 1e-3, 1e-2)  # L2 grid, chosen on a held-out train split
    c.eval.linear_steps = 200  # max L-BFGS iterations per fit (stops earlier on convergence)
    # Few-shot linear (regularised least squares) with these shots per class; () = off.
    c.eval.few_shot = ()
    # Pretraining: a linear head on stop-gradient features, trained alongside on the labels
    # (logged as online_probe_top1 on the training batches); costs one unmasked forward.
    c.eval.online_probe = False
    return c


# Video datasets: (classes, train list, eval list, sampling rate for 16-frame clips).
# Lists are the official repos' `path label` CSVs (VideoMAE DATASET.md): `train.csv` and
# `val.csv` beside the videos; sampling rate 4 for Kinetics, 2 for SSv2 (VideoMAE scripts).
VIDEO_DATASETS = {
    "k400": (400, "train.csv", "val.csv", 4),
    "ssv2": (174, "train.csv", "val.csv", 2),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def set_video_data(config: ml_collections.ConfigDict, data: str, variant: str) -> None:
    """Points `config.data` at a video dataset: k400, ssv2 (annotation lists under
    --config.data.root), folder (root/<split>/<class>/<video>), array_record (clips from
    mim_jax.data.convert_video), synthetic (random clips, no I/O) or "" (the embedded
    moving Fashion-MNIST, for the small default model only)."""
    d = config.data
    if data and data not in (*VIDEO_DATASETS, "folder", "array_record", "synthetic"):
        valid = [*VIDEO_DATASETS, "folder", "array_record", "synthetic"]
        raise ValueError(f"data={data!r}; valid: {valid} (or none: moving Fashion-MNIST)")
    if data in ("", "moving_fashion_mnist"):
        if variant:
            raise ValueError(
                f"variant={variant} needs data=k400|ssv2|folder|array_record|synthetic"
            )
        d.name = "moving_fashion_mnist"
        d.train_split, d.eval_split = "train", "test"
        # 32x32 frames (items of 28 px bounce within 4 px), 8-frame clips every 2nd frame
        # of 16: 4x4x4 = 64 tokens of 2x8x8, small enough to train in minutes on a CPU.
        d.image_size, d.channels, d.num_classes = 32, 1, 10
        d.mean, d.std = (0.2605,), (0.3585,)  # measured over 1000 generated videos
        d.num_frames, d.video_frames, d.sampling_rate = 8, 16, 2
        return
    d.image_size, d.channels = 224, 3
    d.mean, d.std = IMAGENET_MEAN, IMAGENET_STD
    d.num_frames = 16
    d.num_workers = 8
    if data in VIDEO_DATASETS:
        classes, train_list, eval_list, rate = VIDEO_DATASETS[data]
        d.name, d.num_classes, d.sampling_rate = "video_list", classes, rate
        d.train_list, d.eval_list = train_list, eval_list  # relative to config.data.root
        d.train_split, d.eval_split = "train", "val"
    elif data == "folder":
        d.name, d.train_split, d.eval_split = "video_folder", "train", "val"
    elif data == "array_record":
        d.name, d.train_split, d.eval_split = "video_array_record", "train", "val"
    elif data == "synthetic":
        d.name, d.num_workers = "synthetic", 0
        config.eval.at_end = False  # random labels: probes would measure nothing
        config.eval.baselines = False


def set_small_default(config: ml_collections.ConfigDict, epochs: float, every: float) -> None:
    """The embedded default run of an image method: batch 256 for `epochs`, logs every 25
    steps, checkpoints and reconstructions every `every` epochs, mean-pooled features, and
    the raw-pixel and random-init baselines for reference."""
    config.batch_size = 256
    config.total_epochs = epochs
    config.log_every_steps = 25
    config.ckpt.every_epochs = every
    config.viz.every_epochs = every
    config.eval.features = "mean"
    config.eval.baselines = True


IMAGE_DATASETS = ("fashion_mnist", "synthetic", "imagenet2012", "folder", "array_record")


def set_imagenet(config: ml_collections.ConfigDict, size: int) -> None:
    """ImageNet-1k through TFDS at `size` px with the official repos' shared settings
    (IMAGENET_DEFAULT mean/std, flip, eval resize to size / 0.875 + center crop), and the
    run settings of an ImageNet pretraining: bf16 compute with fp32 params (the official
    runs use fp16 / apex mixed precision), logs every 100 steps, a checkpoint per epoch."""
    config.dtype = "bfloat16"
    config.log_every_steps = 100
    config.ckpt.every_epochs = 1.0
    config.viz.every_epochs = 10.0
    config.eval.at_end = False  # kNN over 1.28M images is a separate job
    config.eval.batch_size = 512
    d = config.data
    d.name, d.tfds_name = "tfds", "imagenet2012"
    d.train_split, d.eval_split = "train", "validation"
    d.image_size, d.channels, d.num_classes = size, 3, 1000
    d.mean, d.std = IMAGENET_MEAN, IMAGENET_STD
    d.flip = True
    d.eval_crop_pct = 0.875
    d.num_workers = 8


def set_image_data(config: ml_collections.ConfigDict, data: str, variant: str) -> None:
    """Applies an image config's `data=` arg: fashion_mnist (the small default model),
    synthetic (random images, no I/O), or for a recipe variant imagenet2012 (TFDS, the
    recipe's own default), folder (<root>/train|val/<wnid>/*.JPEG) or array_record (shards
    from `python -m mim_jax.data.convert`)."""
    if data and data not in IMAGE_DATASETS:
        raise ValueError(f"data={data!r}; valid: {list(IMAGE_DATASETS)}")
    if data == "fashion_mnist" and variant:
        raise ValueError("data=fashion_mnist is for the default small model (no variant)")
    if data in ("imagenet2012", "folder", "array_record") and not variant:
        raise ValueError(f"data={data} needs a variant, e.g. variant=...,data={data}")
    d = config.data
    if data in ("folder", "array_record"):
        d.name, d.tfds_name = data, None  # set --config.data.root
        d.train_split, d.eval_split = "train", "val"
    if data == "synthetic":
        d.name, d.num_workers = "synthetic", 0
        config.batch_size = 16 if variant else 64  # pass --config.batch_size for the recipe
        config.eval.at_end = False  # random labels: probes would measure nothing
        config.eval.every_epochs = None
        config.eval.baselines = False


def set_classifier_model(c: ml_collections.ConfigDict) -> None:
    """`config.method="classifier"` with every config.model key it reads at neutral values
    (no augmentation, no weight decay, no warmup; the protocol configs set the recipe)."""
    c.method = "classifier"
    m = c.model
    m.mlp_ratio = 4.0
    m.drop_path = 0.0
    m.pool = "gap"  # gap | cls
    m.head = "linear"  # linear | bn_linear (linear probe) | attentive
    m.freeze_encoder = False
    m.head_init_std = 2e-5
    m.backbone = "vit"  # vit | videomae | audiomae: the pretraining layout init_from loads
    m.loss = "softmax"  # softmax | bce (multi-label)
    m.mask_t_prob = 0.0  # audiomae: time rows / frequency columns of patches dropped in
    m.mask_f_prob = 0.0  # training (Audio-MAE fine-tuning: 0.2 / 0.2)
    # Augmentations on the device (config.model: they run inside the jitted step).
    m.label_smoothing = 0.0
    m.mixup = 0.0  # Beta(alpha, alpha) for mixup; 0 = off
    m.cutmix = 0.0
    m.mix_prob = 1.0  # probability of mixing a batch at all
    m.mix_switch_prob = 0.5  # cutmix instead of mixup when both are on
    m.erase_prob = 0.0  # random erasing, per image
    m.head_dropout = 0.0  # dropout before the head (VideoMAE --fc_drop_rate)
    c.optim.update(min_lr=0.0, weight_decay=0.0, warmup_epochs=0.0)


def get_classifier_config(variant: str, data: str) -> ml_collections.ConfigDict:
    """The shared part of the fine-tuning and probing configs: `config.method="classifier"`
    on the encoder of configs/mae.py's `variant` ("" = its small Fashion-MNIST model),
    with `data` as in the MAE config. Start from a pretraining run with
    `--config.init_from=WORKDIR` (a run, step dir or export); without it the encoder starts
    from random init (the from-scratch baseline)."""
    from configs import mae  # configs import common

    c = get_base_config()
    set_classifier_model(c)
    m = c.model
    c.eval.features = "cls"
    if variant:
        if variant not in mae.VARIANTS:
            raise ValueError(f"variant={variant!r}; valid: {sorted(mae.VARIANTS)}")
        patch, width, depth, heads = mae.VARIANTS[variant]
        m.update(patch_size=patch, width=width, depth=depth, num_heads=heads)
        set_imagenet(c, 224)
        c.eval.at_end = True
        c.eval.every_epochs = 10.0
        c.data.crop_scale = (0.08, 1.0)  # timm / torchvision RandomResizedCrop default
        c.data.eval_crop_pct = 224 / 256  # Resize(256) + CenterCrop(224) (MAE util/datasets.py)
    else:
        m.update(mae.SMALL_MODEL)
        c.log_every_steps = 25
        c.eval.every_epochs = 1.0
        c.eval.batch_size = 1000
        c.ckpt.every_epochs = 1.0
    set_image_data(c, data, variant)
    return c
