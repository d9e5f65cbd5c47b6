"""Reconstruct your own images, clips or audio with a trained run or an export, at any mask
ratio (the weights do not depend on it).

    python -m mim_jax.tools.reconstruct --run=WORKDIR_OR_EXPORT --inputs=a.jpg,b.png \
        --mask_ratio=0.9 --out=recon.png

`--run` is a training workdir (its latest checkpoint) or an export dir / gs:// URI from
`python -m mim_jax.main --mode=export`. Inputs are image, video or audio files, matching
the run's data (they go through the run's evaluation transform).
"""

import copy
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image

from mim_jax import checkpoint, export, methods
from mim_jax.data import pipeline
from mim_jax.evaluators import reconstruction


def load(uri: str) -> tuple[dict, ml_collections.ConfigDict]:
    """(params, config) of an export, or of a workdir's latest checkpoint."""
    path = checkpoint.as_dir(uri)
    if (path / "export.json").exists():
        return export.load(uri)
    ckpt = checkpoint.Checkpointer(checkpoint.checkpoints_dir(path), read_only=True)
    step = ckpt.latest_step()
    if step is None:
        raise FileNotFoundError(f"--run={uri}: neither an export nor a workdir with checkpoints")
    return checkpoint.read_params(ckpt.directory / str(step)), export.read_config(uri)


def read_inputs(paths: Sequence[str], data: ml_collections.ConfigDict) -> np.ndarray:
    """Files -> one batch [N, *input_shape] through the run's evaluation transform (resize
    and centre crop; the centre clip; the log-mel of the start of the audio)."""
    transform = pipeline.eval_transform(data)
    rows = []
    for path in paths:
        if data.num_frames:
            element = {"video": str(path), "path": str(path), "label": 0}
        else:
            element = {"encoded": Path(path).read_bytes(), "path": str(path), "label": 0}
        out = transform.map(element)
        if "error" in out:
            raise ValueError(f"{path}: cannot be read as the run's input ({out['error']})")
        rows.append(out["image"])
    return np.stack(rows)


def with_mask_ratio(config: ml_collections.ConfigDict, ratio: float | None):
    """A copy of `config` whose model masks `ratio` of the tokens (None: unchanged)."""
    config = copy.deepcopy(config)
    if ratio is None:
        return config
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask_ratio={ratio} must be in (0, 1)")
    with config.unlocked():
        if "mask_ratio" in config.model:
            config.model.mask_ratio = ratio
        elif "num_masked" in config.model:  # CAE: a number of patches
            d = config.data
            patches = (d.image_size // config.model.patch_size) ** 2
            config.model.num_masked = max(1, min(patches - 1, round(ratio * patches)))
        else:
            raise ValueError(f"config.method={config.method!r} has no mask ratio to change")
    return config


def reconstruct(
    params,
    config: ml_collections.ConfigDict,
    inputs: np.ndarray,
    mask_ratio: float | None = None,
    seed: int = 0,
) -> Image.Image:
    """The reconstruction picture of `inputs` (uint8 images/clips or log-mels, as
    `read_inputs` or the data pipeline gives them) with `mask_ratio` of the tokens hidden."""
    config = with_mask_ratio(config, mask_ratio)
    method = methods.build(config)
    if not hasattr(method, "reconstruct"):
        raise ValueError(f"config.method={config.method!r} does not reconstruct its input")
    d = config.data
    expected = jax.eval_shape(method.init, jax.random.PRNGKey(0), {"image": inputs[:1]})
    missing = sorted(set(expected) - set(params))
    if missing:
        raise ValueError(
            f"the weights lack {missing}: reconstructing needs the decoder (export the run "
            "with --export_decoder, or pass its workdir)"
        )
    views = jax.jit(method.reconstruct)(
        params,
        pipeline.normalize(inputs, d.mean, d.std),
        {"masking": jax.random.PRNGKey(seed)},
    )
    order = getattr(method, "reconstruction_views", sorted(views))
    return reconstruction.render(jax.device_get(views), order, d)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f.run or not f.inputs:
        raise app.UsageError("--run and --inputs are required")
    params, config = load(f.run)
    picture = reconstruct(params, config, read_inputs(f.inputs, config.data), f.mask_ratio, f.seed)
    picture.save(f.out)
    print(f.out)


if __name__ == "__main__":  # flags only here: importing the module defines none
    flags.DEFINE_string("run", None, "Training workdir or export dir/URI.")
    flags.DEFINE_list("inputs", [], "Image, video or audio files.")
    flags.DEFINE_float("mask_ratio", None, "Default: the run's own.")
    flags.DEFINE_integer("seed", 0, "Masking seed.")
    flags.DEFINE_string("out", "reconstruction.png", "Where the picture goes.")
    app.run(main)
