"""Audio-MAE fine-tuning: the official protocol (Huang et al., NeurIPS 2022, Sec. 4;
facebookresearch/AudioMAE main_finetune_as.py, models_vit.py, dataset.py and the
submit_ft_mask_bal.sh / ft_as.sh scripts).

A classifier on the Audio-MAE encoder (the pretraining's frozen sin-cos table, a cls
token), mean of the patch tokens + fc_norm, a linear head, trained with multi-label BCE
and scored by mAP. In training, 20% of the time rows and 20% of the frequency columns of
patches are dropped from the encoder; clips are mixed at the waveform level with
probability 0.5 (lambda ~ Beta(10, 10), labels mixed alike); one SpecAugment frequency
mask (48 bins) and one time mask (192 frames); random gain. AudioSet-2M draws 200k clips
per epoch, class-balanced.

Default: the small encoder of configs/audiomae.py on the embedded spoken keywords, from
a pretraining run (without init_from: the from-scratch baseline at the same budget):

    python -m mim_jax.main --config=configs/audiomae_finetune.py \\
        --config.init_from=workdirs/audiomae_keywords --workdir=workdirs/audiomae_ft_keywords

AudioSet-2M (`root` holds the audio, train_all.json, eval.json, class_labels_indices.csv):

    python -m mim_jax.main --config=configs/audiomae_finetune.py:variant=B,data=audioset \\
        --config.data.root=/data/audioset --config.init_from=gs://bucket/audiomae_b16 \\
        --workdir=workdirs/audiomae_ft_as2m

Args: variant (B), data (audioset = AS-2M, audioset20k = the balanced 20K, folder,
tfds, synthetic).
"""

from configs import audiomae, common

DATASETS = ("audioset", "audioset20k", "folder", "tfds", "synthetic")
# (lr per 256 clips, clips per batch, epochs, warmup epochs):
# submit_ft_mask_bal.sh (AS-2M): blr 2e-4 x 64 GPUs x 4, 100 epochs, 10 warmup;
# ft_as.sh (AS-20K): blr 1e-3 x 4 GPUs x 8, 60 epochs, 4 warmup.
RECIPES = {"audioset": (2e-4, 256, 100.0, 10.0), "audioset20k": (1e-3, 32, 60.0, 4.0)}


def set_recipe(config, data: str) -> None:
    """ViT-B/16 on 1024 x 128 log-mels with the AS-2M recipe (AS-20K's for audioset20k)."""
    m, d = config.model, config.data
    m.update(patch_size=16, width=768, depth=12, num_heads=12)  # vit_base_patch16
    # 1024 frames; dataset.py norm_stats (x + 4.2677393) / (4.5689974 * 2), as pretraining
    audiomae.set_data(config, "audioset" if data in RECIPES else data)
    blr, batch, epochs, warmup = RECIPES.get(data, RECIPES["audioset"])
    config.optim.update(base_lr=blr, warmup_epochs=warmup)
    config.batch_size = batch
    config.total_epochs = epochs
    if data == "audioset":
        d.train_list = "train_all.json"  # the official AS-2M list (unbalanced + balanced)
        # --weight_sampler True, --epoch_len 200000 (with replacement: --replacement False
        # parses as True, argparse type=bool)
        d.balanced_sampling, d.epoch_len = True, 200_000
    elif data == "audioset20k":
        d.train_list = "train.json"  # the balanced 20K subset
    config.dtype = "bfloat16"  # the official runs: torch.cuda.amp with fp32 weights
    config.log_every_steps = 100
    config.ckpt.every_epochs = 1.0
    config.eval.every_epochs = 5.0
    config.eval.batch_size = 64


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    common.set_classifier_model(config)
    m, o, d = config.model, config.optim, config.data
    m.backbone = "audiomae"
    m.pool = "gap"  # --global_pool: fc_norm(mean of the patch tokens)
    m.loss = "bce"  # nn.BCEWithLogitsLoss (--use_soft False); mixup/smoothing not applied
    m.head_init_std = 2e-5  # trunc_normal_(model.head.weight, std=2e-5)
    m.drop_path = 0.1  # --drop_path 0.1
    m.mask_t_prob, m.mask_f_prob = 0.2, 0.2  # --mask_2d True --mask_t_prob 0.2 --mask_f_prob 0.2
    # AdamW with torch's default betas (0.9, 0.999), wd 5e-4 (not on 1-D params or the
    # cls token), layer decay 0.75, min_lr 1e-6 (not scaled), no clipping.
    o.update(name="adamw", b1=0.9, b2=0.999, weight_decay=5e-4, layer_decay=0.75, min_lr=1e-6)
    audiomae.set_audio_input(config)  # 16 kHz, 128 bins; --roll_mag_aug True: a gain only
    d.mixup = 0.5  # dataset.py: mix with a random clip with probability 0.5
    d.freqm, d.timem = 48, 192  # main_finetune_as.py audio_conf (args.freqm/timem unused)
    config.eval.features = "mean"
    if audiomae.check_args(arg.variant, arg.data, DATASETS):
        set_recipe(config, arg.data)
        if arg.data == "synthetic":
            config.batch_size = 8  # pass --config.batch_size for the recipe
        return config
    # Embedded default: configs/audiomae.py's small encoder on 1.25 s keyword clips (128
    # frames x 128 bins: 8 x 8 patches, of which 6 x 6 stay in training), the masks scaled
    # to the shorter clips (192 of 1024 frames -> 24 of 128).
    audiomae.set_keywords_data(config)
    d.freqm, d.timem = 48, 24
    # One word per clip: softmax cross-entropy on the (waveform-mixed) targets, as the
    # official --use_soft. Measured from the pretrained encoder, BCE stays at the class
    # prior for the first epochs of this 375-step budget (top-1 10% at 74 steps, against
    # 26% with softmax); the AudioSet recipes keep BCE.
    m.loss = "softmax"
    # Peak lr 1e-3 at batch 64 (the official 1.25e-4 is for 37k steps; at 375 steps it
    # leaves BCE at the class prior), 1 warmup epoch.
    o.update(base_lr=4e-3, warmup_epochs=1.0)
    config.batch_size = 64
    config.total_epochs = 10.0  # 375 steps
    config.log_every_steps = 50
    config.ckpt.every_epochs = 5.0
    config.eval.every_epochs = 2.5
    config.eval.batch_size = 256
    return config
