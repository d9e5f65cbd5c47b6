"""Evaluation of frozen features, no training: kNN (k=20, temperature 0.07, cosine votes
as DINO), a linear probe fit to convergence on cached features (L-BFGS, L2 chosen on held
out train examples: the fast path of configs/linprobe.py) and few-shot linear
(regularised least squares, 1/5/10/25 shots per class, 5 draws each), next to the same
probes on raw pixels and on the encoder at random init.

    python -m mim_jax.main --config=configs/frozen_eval.py:method=mae \\
        --config.init_from=workdirs/mae_fmnist --workdir=workdirs/frozen_eval_fmnist

Args: method (any pretraining config name under configs/, default mae), and the args of
that config after it (variant=..., data=...).
"""

import importlib


def get_config(arg: str | None = None):
    arg = arg or ""
    rest = [p for p in arg.split(",") if p and not p.startswith("method=")]
    method = next((p.split("=", 1)[1] for p in arg.split(",") if p.startswith("method=")), "mae")
    try:
        module = importlib.import_module(f"configs.{method}")
    except ModuleNotFoundError as e:
        raise ValueError(f"method={method!r}: no configs/{method}.py") from e
    config = module.get_config(",".join(rest))
    config.total_steps = 0  # evaluation only
    config.total_epochs = None
    config.eval.at_end = True
    config.eval.few_shot = (1, 5, 10, 25)  # shots per class (ViT paper, Sec. 4.1)
    return config
