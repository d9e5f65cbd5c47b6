"""Audio-MAE (Huang et al., "Masked Autoencoders that Listen", NeurIPS 2022).

Default: a small Audio-MAE on the embedded spoken keywords (Speech Commands' ten words
synthesised with espeak-ng; 1.25 s clips as 128 frames x 128 mel bins), with kNN / linear-probe
evaluation against its random init and spectrogram reconstructions:

    python -m mim_jax.main --config=configs/audiomae.py --workdir=workdirs/audiomae_keywords

AudioSet-2M recipe (facebookresearch/AudioMAE submit_pretrain_audioset2M.sh); `root`
holds the audio files, the official json lists and class_labels_indices.csv:

    python -m mim_jax.main --config=configs/audiomae.py:variant=B,data=audioset \
        --config.data.root=/data/audioset --workdir=workdirs/audiomae_b16_as2m

Args: variant (B), decoder (swin | global), data (audioset, folder, tfds, synthetic).
"""

from configs import common
from mim_jax.data import fbank

DATASETS = ("audioset", "folder", "tfds", "synthetic")


def set_recipe(config) -> None:
    """The official ViT-B/16 AudioSet-2M pretraining (submit_pretrain_audioset2M.sh)."""
    m = config.model
    m.update(patch_size=16, width=768, depth=12, num_heads=12)  # mae_vit_base_patch16
    m.update(decoder_width=512, decoder_heads=16)  # models_mae.py decoder_embed_dim / heads
    # 8 nodes x 8 GPUs x 8 clips; blr 2e-4 x 512 / 256; 33 epochs, 3 warmup, half-cycle
    # cosine to 0; AdamW (0.9, 0.95), wd 1e-4 (1-D params and biases exempt), no clipping.
    config.batch_size = 512
    config.total_epochs = 33.0
    config.optim.update(base_lr=2e-4, lr_base_batch=256, min_lr=0.0, warmup_epochs=3.0)
    config.optim.update(b1=0.9, b2=0.95, weight_decay=1e-4)
    config.dtype = "bfloat16"  # the official run uses fp16 autocast with fp32 weights
    config.log_every_steps = 100
    config.ckpt.every_epochs = 4.0  # --save_every_epoch 4
    config.viz.every_epochs = 4.0
    config.viz.num_images = 4
    config.eval.at_end = False  # AudioSet is evaluated by fine-tuning (mAP), a separate job
    config.eval.features = "mean"
    config.eval.batch_size = 64


def set_data(config, data: str) -> None:
    """Full-size 16 kHz, 128-bin, 1024-frame inputs from one of DATASETS."""
    d = config.data
    if data not in DATASETS:
        raise ValueError(f"data={data!r}; valid: {DATASETS} (or none: spoken keywords)")
    d.target_length = 1024  # 10.24 s (main_pretrain.py target_length['audioset'])
    d.mean, d.std = (fbank.AUDIOSET_MEAN,), (2 * fbank.AUDIOSET_STD,)  # dataset.py: / (2 std)
    d.num_workers = 8
    d.train_split, d.eval_split = "train", "eval"
    if data == "audioset":
        d.name, d.num_classes = "audio_list", 527
        d.train_list, d.eval_list = "train.json", "eval.json"  # relative to data.root
        d.class_csv = "class_labels_indices.csv"
    elif data == "folder":
        d.name = "audio_folder"
    elif data == "tfds":
        d.name = "tfds_audio"
    else:
        d.name, d.num_workers = "synthetic", 0


def set_audio_input(config) -> None:
    """16 kHz mono, 128-bin Kaldi fbank (dataset.py), random gain, no flips."""
    d = config.data
    d.channels, d.num_mel_bins, d.sample_rate = 1, 128, 16000  # dataset.py fbank call
    # --roll_mag_aug True: its roll offset is always 0 on mono audio, so only the gain
    # Beta(10, 10) + 0.5 acts (dataset.py _roll_mag_aug); time_roll stays off.
    d.gain_aug, d.time_roll = True, False
    d.flip = False


def check_args(variant: str, data: str, datasets: tuple[str, ...]) -> bool:
    """True for the official recipe (variant=B with one of `datasets`), False for the
    embedded default (neither); anything else fails naming the valid values."""
    if variant:
        if variant != "B":
            raise ValueError(f"variant={variant!r}; valid: B (the official recipe)")
        if data not in datasets:
            raise ValueError(f"variant=B needs data= one of {datasets}")
        return True
    if data:
        raise ValueError(f"data={data} needs variant=B (the default model is sized "
                         "for the embedded spoken keywords)")  # fmt: skip
    return False


def set_keywords_data(config) -> None:
    """The embedded spoken keywords: 10 words, 1.25 s clips as 128 frames x 128 bins, and
    configs/audiomae.py's small ViT encoder (16 x 16 patches: an 8 x 8 grid)."""
    d = config.data
    d.name, d.num_classes = "spoken_keywords", 10
    d.train_split, d.eval_split = "train", "test"
    d.target_length = 128
    d.mean, d.std = (-5.4933,), (2 * 6.6129,)  # measured over padded features, as AST's
    config.model.update(patch_size=16, width=128, depth=4, num_heads=4)


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", decoder="swin", data="")
    config = common.get_base_config()
    config.method = "audiomae"
    m = config.model
    m.mask_ratio = 0.8  # main_pretrain.py --mask_ratio 0.8, 1-D random masking
    m.mask_2d = False  # 2-D time/frequency masking: off in pretraining (fine-tuning uses it)
    m.mask_t_prob, m.mask_f_prob = 0.7, 0.3  # used only with mask_2d (main_pretrain.py)
    m.norm_pix_loss = True  # parser.set_defaults(norm_pix_loss=True)
    m.mlp_ratio = 4.0
    m.decoder_type = arg.decoder
    if arg.decoder == "swin":
        # decoder_mode=1: 16 Swin-V2-CR blocks (hard-coded; decoder_depth is ignored),
        # 4x4 windows, every second block shifted by 2 along time.
        m.update(decoder_depth=16, window=(4, 4), shift=(2, 0), meta_hidden=384)
        m.meta_dropout = 0.1
    elif arg.decoder == "global":
        m.decoder_depth = 8  # decoder_mode=0: MAE's 8-block ViT decoder
    else:
        raise ValueError(f"decoder={arg.decoder!r}; valid: swin, global")
    set_audio_input(config)
    if check_args(arg.variant, arg.data, DATASETS):
        set_recipe(config)
        set_data(config, arg.data)
        if arg.data == "synthetic":
            config.batch_size = 8  # pass --config.batch_size for the recipe
        return config
    # Embedded default: 1.25 s keyword clips (128 frames x 128 bins, 8 x 8 patches), a
    # small ViT and a 2-block (unshifted + shifted) window decoder.
    set_keywords_data(config)
    m.update(decoder_width=64, decoder_heads=4, decoder_depth=2)
    # 30 epochs of 2,400 clips (1,110 steps of 64), peak lr 3e-3: measured against 4x
    # lower (kNN 23.8 / linear 49.6 instead of 26.7 / 67.7 at the same length).
    config.batch_size = 64
    config.total_epochs = 30.0
    config.optim.update(base_lr=1.2e-2, warmup_epochs=3.0, weight_decay=0.05)
    config.log_every_steps = 50
    config.ckpt.every_epochs = 10.0
    config.viz.every_epochs = 10.0
    config.viz.num_images = 6
    config.eval.features = "mean"
    config.eval.baselines = True  # the encoder at random init, and raw log-mels
    config.eval.batch_size = 256
    return config
