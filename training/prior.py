"""Prior shift without labels (Saerens, Latinne & Decaestecker, 2002, "Adjusting the outputs
of a classifier to new a priori probabilities: a simple procedure").

A classifier trained where the classes had prior p_train outputs p(y|x) ∝ p(x|y) p_train(y).
On text whose prior is q the Bayes posterior is p(y|x) q(y) / p_train(y), renormalised, and q
is the fixed point of "q = mean of those adjusted posteriors" over unlabeled text of the new
domain, which EM finds."""

from __future__ import annotations

import numpy as np


def smoothed(prior: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """A prior with every class at least `floor` (before renormalising): a class the training
    data never had must still be able to gain mass on new text."""
    prior = np.asarray(prior, dtype=np.float64)
    out: np.ndarray = prior / prior.sum() + floor
    return out / out.sum()


def adjust(probs: np.ndarray, train_prior: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Posteriors under `prior` instead of `train_prior`."""
    weighted = probs * (prior / train_prior)
    out: np.ndarray = weighted / weighted.sum(1, keepdims=True)
    return out


def em_prior(
    probs: np.ndarray, train_prior: np.ndarray, iterations: int = 200, tolerance: float = 1e-7
) -> tuple[np.ndarray, int]:
    """The class prior of the texts `probs` were computed on, and the iterations it took."""
    train_prior = np.asarray(train_prior, dtype=np.float64)
    if train_prior.shape != (probs.shape[1],) or np.any(train_prior <= 0):
        raise ValueError(f"train prior {train_prior} must be positive, one value per class")
    train_prior = train_prior / train_prior.sum()
    prior = train_prior.copy()
    for step in range(1, iterations + 1):
        new = adjust(probs.astype(np.float64), train_prior, prior).mean(0)
        if np.abs(new - prior).max() < tolerance:
            return new, step
        prior = new
    return prior, iterations


def logit_shift(train_prior: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """What to add to the logits so that softmax gives the adjusted posteriors."""
    out: np.ndarray = np.log(np.asarray(prior) / np.asarray(train_prior))
    return out - out.mean()
