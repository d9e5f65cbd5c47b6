"""Classification scores of the audio protocols: top-k accuracy (ESC-50, Speech Commands)
and mean average precision over classes (AudioSet, multi-label)."""

import numpy as np


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the k highest scores. logits [N, C], labels [N]."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the step precision-recall curve, thresholds at the distinct scores:
    sum_n (R_n - R_{n-1}) P_n (scikit-learn's `average_precision_score`). scores [N],
    binary targets [N] with at least one positive."""
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets) > 0
    if not targets.any():
        raise ValueError("average precision needs at least one positive target")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(targets)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """AudioSet's mAP: per-class AP averaged over classes. scores, targets [N, C].

    Classes without a positive in `targets` have no AP and are left out (the official
    `calculate_stats` fails on them, through its per-class ROC AUC); their number is
    reported as "classes_without_positives".
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must be [N, C]")
    present = np.flatnonzero((targets > 0).any(axis=0))
    aps = [average_precision(scores[:, c], targets[:, c]) for c in present]
    return {
        "mAP": float(np.mean(aps)) if aps else float("nan"),
        "classes_without_positives": int(targets.shape[1] - len(present)),
    }
