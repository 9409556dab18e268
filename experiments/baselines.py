"""Simple-signal baselines every learned router is compared with (a router that cannot beat them
has learned nothing a one-line rule would not).

* ``prompt_length``: longer prompt -> more likely routed to the strong model
  (:func:`routellm_jax.eval.baselines.prompt_length_router`); no training.
* ``lr_pair``: logistic regression on mean-pooled MiniLM embeddings, trained on the one
  strong/weak pair's labels found in a training mix (battles of the pair, and prompts where both
  models have an outcome, target ``0.5 + 0.5 * (s_strong - s_weak)`` with grades scaled to [0, 1]).
* ``lr_difficulty``: the same regression trained on a pair-free difficulty target: for each prompt
  with per-model outcomes, ``1 - mean score over every model``. It asks whether "hard prompt" alone
  is a routing signal (it needs no label of the pair at all).

The regression is full-batch Adam (optax) on a weighted, L2-regularised cross-entropy with soft
targets; deterministic (zero init, no sampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from routellm_jax.data.labels import pair_preference_sums
from routellm_jax.data.records import TrainingData


@dataclass(frozen=True)
class LogReg:
    """A fitted logistic regression ``sigmoid(x @ w + b)``.

    Example:
        >>> LogReg(np.zeros(2, np.float32), 0.0).predict(np.ones((3, 2), np.float32)).tolist()
        [0.5, 0.5, 0.5]
    """

    w: np.ndarray
    b: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(label = 1) for rows of ``x`` ``[n, d]``."""
        z = np.asarray(x, np.float64) @ np.asarray(self.w, np.float64) + self.b
        return 1.0 / (1.0 + np.exp(-z))


def fit_logreg(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    l2: float = 1e-3,
    steps: int = 500,
    lr: float = 0.05,
) -> LogReg:
    """Weighted logistic regression with soft targets ``y`` in [0, 1], full-batch Adam.

    Example:
        >>> x = np.array([[1.0], [-1.0]] * 10, np.float32); y = (x[:, 0] > 0).astype(np.float32)
        >>> bool(fit_logreg(x, y, steps=200).predict(np.array([[1.0]]))[0] > 0.8)
        True
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"fit_logreg: x {x.shape} and y {y.shape} do not match")
    if x.shape[0] == 0:
        raise ValueError("fit_logreg: no training rows")
    w8 = jnp.ones_like(y) if weight is None else jnp.asarray(weight, jnp.float32)
    w8 = w8 / jnp.sum(w8)
    params = {"w": jnp.zeros(x.shape[1], jnp.float32), "b": jnp.zeros((), jnp.float32)}
    tx = optax.adam(lr)

    def loss_fn(p):
        z = x @ p["w"] + p["b"]
        ce = optax.sigmoid_binary_cross_entropy(z, y)
        return jnp.sum(w8 * ce) + l2 * jnp.sum(p["w"] ** 2)

    @jax.jit
    def run(p):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
        return p

    out = jax.device_get(run(params))
    return LogReg(np.asarray(out["w"]), float(out["b"]))


def _scaled_scores(data: TrainingData) -> np.ndarray:
    """Outcome scores in [0, 1]: grades (1-10) rescaled, correctness as is."""
    o = data.outcomes
    s = np.asarray(o.score, np.float64)
    grade = np.asarray(o.kind == "grade")
    return np.where(grade, (np.clip(s, 1.0, 10.0) - 1.0) / 9.0, s)


def pair_labels(data: TrainingData, strong: str, weak: str) -> tuple[list[str], np.ndarray]:
    """Per-prompt soft labels P(strong better than weak) from a mix (see the module docstring).

    Returns ``(prompts, labels)``; a prompt with several labels gets their mean.

    Example:
        >>> from routellm_jax.data.records import Outcome, OutcomeTable
        >>> d = TrainingData.of(outcomes=OutcomeTable.from_records(
        ...     [Outcome("q", "s", 1.0), Outcome("q", "w", 0.0)]))
        >>> pair_labels(d, "s", "w")
        (['q'], array([1.]))
    """
    sums = pair_preference_sums(data.comparisons, strong, weak)
    o = data.outcomes
    if len(o):
        scores = _scaled_scores(data)
        per: dict[str, dict[str, list[float]]] = {}
        for p, m, s in zip(o.prompt, o.model, scores):
            if m == strong or m == weak:
                per.setdefault(p, {}).setdefault(m, []).append(float(s))
        for p, d in per.items():
            if strong in d and weak in d:
                acc = sums.setdefault(p, [0.0, 0.0])
                acc[0] += 0.5 + 0.5 * (np.mean(d[strong]) - np.mean(d[weak]))
                acc[1] += 1.0
    prompts = [p for p, (_, tot) in sums.items() if tot > 0]
    labels = np.array([sums[p][0] / sums[p][1] for p in prompts], np.float64)
    return prompts, labels


def difficulty_labels(data: TrainingData) -> tuple[list[str], np.ndarray]:
    """Per-prompt difficulty ``1 - mean score over all models`` from a mix's outcomes.

    Example:
        >>> from routellm_jax.data.records import Outcome, OutcomeTable
        >>> d = TrainingData.of(outcomes=OutcomeTable.from_records(
        ...     [Outcome("q", "a", 1.0), Outcome("q", "b", 0.0)]))
        >>> difficulty_labels(d)
        (['q'], array([0.5]))
    """
    o = data.outcomes
    if not len(o):
        return [], np.zeros(0)
    scores = _scaled_scores(data)
    sums: dict[str, list[float]] = {}
    for p, s in zip(o.prompt, scores):
        acc = sums.setdefault(p, [0.0, 0.0])
        acc[0] += float(s)
        acc[1] += 1.0
    prompts = list(sums)
    return prompts, np.array([1.0 - sums[p][0] / sums[p][1] for p in prompts])


def fit_text_logreg(
    prompts: Sequence[str], labels: np.ndarray, embed, **kwargs
) -> tuple[LogReg, int]:
    """Embed ``prompts`` with ``embed(list) -> [n, d]`` and fit :func:`fit_logreg`.

    Returns the model and the number of training prompts.

    Example:
        >>> m, n = fit_text_logreg(["a", "b"], np.array([1.0, 0.0]),
        ...                        lambda ps: np.eye(2, dtype=np.float32)[[0 if p == "a" else 1 for p in ps]])
        >>> n
        2
    """
    x = np.asarray(embed(list(prompts)), np.float32)
    return fit_logreg(x, np.asarray(labels, np.float32), **kwargs), len(prompts)
