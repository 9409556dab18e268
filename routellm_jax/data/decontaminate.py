"""Remove training prompts that (nearly) repeat evaluation prompts, and report what went.

Two reasons, checked in order:

1. ``exact``: equal after :func:`normalize_text` (Unicode NFKC, lower case, whitespace runs collapsed
   to one space, punctuation and spaces stripped at both ends);
2. ``near_duplicate``: cosine similarity of prompt embeddings >= ``threshold`` (0.95, the paper's
   value) to some evaluation prompt, given any ``embed_fn(list[str]) -> np.ndarray[n, d]`` (e.g.
   ``routellm_jax.models.encoders.embedder.load_embedder("all-MiniLM-L6-v2").embed``).

Work is done on distinct normalised prompts (training tables repeat prompts: AlpacaEval has 805
prompts behind 108k battles), embeddings are computed in batches, and similarities in blocks of
training rows against all evaluation rows, so 100k x 15k never materialises (peak memory is
``block_size x n_eval`` floats).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from routellm_jax.data.records import ComparisonTable, OutcomeTable, TrainingData

EmbedFn = Callable[[list[str]], np.ndarray]
T = TypeVar("T", ComparisonTable, OutcomeTable, TrainingData)

DEFAULT_THRESHOLD = 0.95


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def normalize_text(text: str) -> str:
    """NFKC, lower case, collapse whitespace, strip punctuation/space at both ends.

    Example:
        >>> normalize_text("  What   is 2+2?\\n")
        'what is 2+2'
    """
    t = " ".join(unicodedata.normalize("NFKC", text).lower().split())  # split(): any Unicode space
    start, end = 0, len(t)
    while start < end and _is_edge_junk(t[start]):
        start += 1
    while end > start and _is_edge_junk(t[end - 1]):
        end -= 1
    return t[start:end]


@dataclass
class DecontaminationReport:
    """What :func:`decontaminate` removed. Counts are of table rows unless named ``prompts``."""

    threshold: float | None
    rows_before: int = 0
    rows_after: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # reason -> rows
    removed_prompts: dict[str, int] = field(default_factory=dict)  # reason -> distinct prompts
    by_eval_set: dict[str, dict[str, int]] = field(default_factory=dict)  # set -> reason -> rows
    eval_set_sizes: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "rows_before": self.rows_before,
            "rows_after": self.rows_after,
            "removed": dict(self.removed),
            "removed_prompts": dict(self.removed_prompts),
            "by_eval_set": {k: dict(v) for k, v in self.by_eval_set.items()},
            "eval_set_sizes": dict(self.eval_set_sizes),
            "examples": list(self.examples),
        }


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def embed_in_batches(embed_fn: EmbedFn, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """``embed_fn`` over ``texts`` in batches -> unit-norm float32 ``[n, d]``.

    Example:
        >>> embed_in_batches(lambda b: np.ones((len(b), 3)), ["a", "b"]).shape
        (2, 3)
    """
    out = []
    for i in range(0, len(texts), batch_size):
        batch = list(texts[i : i + batch_size])
        emb = np.asarray(embed_fn(batch))
        if emb.ndim != 2 or emb.shape[0] != len(batch):
            raise ValueError(
                f"embed_fn returned shape {emb.shape} for {len(batch)} texts; expected [n, d]"
            )
        out.append(_unit(emb))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out, axis=0)


def max_cosine(
    queries: np.ndarray, keys: np.ndarray, *, block_size: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """For each unit-norm query row, the max cosine over unit-norm ``keys`` and its index.

    Blocked over queries: memory ``block_size x len(keys)``.

    Example:
        >>> q = np.eye(2, dtype=np.float32); k = np.array([[0.0, 1.0]], np.float32)
        >>> max_cosine(q, k)[0].tolist()
        [0.0, 1.0]
    """
    n = len(queries)
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.zeros(n, dtype=np.int64)
    if n == 0 or len(keys) == 0:
        return best, arg
    keys_t = np.ascontiguousarray(keys.T)
    for i in range(0, n, block_size):
        sims = queries[i : i + block_size] @ keys_t  # [block, n_keys]
        arg[i : i + block_size] = np.argmax(sims, axis=1)
        best[i : i + block_size] = sims[np.arange(len(sims)), arg[i : i + block_size]]
    return best, arg


@dataclass
class EvalIndex:
    """Evaluation prompts prepared once (normalised, exact-match index, optional embeddings) so
    several training tables can be checked without redoing that work.

    Example:
        >>> idx = EvalIndex.build({"gsm8k": ["What is 2+2?"]})
        >>> idx.exact["what is 2+2"]
        0
    """

    names: list[str]  # eval set of each prompt
    raw: list[str]
    exact: dict[str, int]  # normalised text -> first prompt index
    sizes: dict[str, int]
    embeddings: np.ndarray | None = None  # [n_eval, d] unit-norm, when an embed_fn was given

    @classmethod
    def build(
        cls,
        eval_sets: Mapping[str, Sequence[str]],
        embed_fn: EmbedFn | None = None,
        embed_batch_size: int = 1024,
    ) -> EvalIndex:
        names, raw = [], []
        for name, prompts in eval_sets.items():
            for p in prompts:
                names.append(name)
                raw.append(p)
        exact: dict[str, int] = {}
        for i, p in enumerate(raw):
            exact.setdefault(normalize_text(p), i)
        emb = embed_in_batches(embed_fn, raw, embed_batch_size) if embed_fn and raw else None
        return cls(names, raw, exact, {k: len(v) for k, v in eval_sets.items()}, emb)


def decontaminate(
    data: T,
    eval_sets: Mapping[str, Sequence[str]] | EvalIndex,
    *,
    embed_fn: EmbedFn | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    block_size: int = 2048,
    embed_batch_size: int = 1024,
    max_examples: int = 20,
) -> tuple[T, DecontaminationReport]:
    """Drop rows whose prompt repeats an evaluation prompt (exact, then near-duplicate).

    ``data`` is a :class:`ComparisonTable`, :class:`OutcomeTable` or :class:`TrainingData` (both
    tables filtered). ``eval_sets`` maps a set name (e.g. ``"mmlu"``) to its prompts. Without
    ``embed_fn`` only exact matches are removed (the report's threshold is then None).
    Pass an :class:`EvalIndex` instead of the mapping to reuse the normalised (and embedded)
    evaluation prompts across several calls.

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("What is 2+2?", "a", "b", "a"),
        ...                                   Comparison("Name a cat.", "a", "b", "b")])
        >>> kept, rep = decontaminate(t, {"gsm8k": ["what is 2+2"]})
        >>> len(kept), rep.removed
        (1, {'exact': 1})
    """
    tables: list[ComparisonTable | OutcomeTable]
    if isinstance(data, TrainingData):
        tables = [data.comparisons, data.outcomes]
    else:
        tables = [data]
    report = DecontaminationReport(threshold=threshold if embed_fn is not None else None)
    report.rows_before = sum(len(t) for t in tables)

    # Distinct normalised training prompts across all tables: normalise each distinct raw
    # prompt once (pd.factorize), then group raw prompts by their normalised form.
    all_raw = np.concatenate([t.prompt for t in tables]) if tables else np.zeros(0, dtype=object)
    raw_codes, raw_uniques = pd.factorize(pd.Series(all_raw, dtype=object))
    raw_uniques = np.asarray(raw_uniques, dtype=object)
    norm_of_raw = np.array([normalize_text(str(p)) for p in raw_uniques], dtype=object)
    norm_codes, uniq = pd.factorize(pd.Series(norm_of_raw, dtype=object))
    uniq = np.asarray(uniq, dtype=object)
    inverse = norm_codes[raw_codes] if len(all_raw) else np.zeros(0, dtype=np.int64)
    first_raw_index = np.full(len(uniq), -1, dtype=np.int64)
    first_raw_index[norm_codes[::-1]] = np.arange(len(norm_codes))[::-1]
    raw_first = {j: raw_uniques[first_raw_index[j]] for j in range(len(uniq))}

    # Evaluation prompts, normalised, with the set each came from.
    if not isinstance(eval_sets, EvalIndex):
        eval_sets = EvalIndex.build(eval_sets)
    index = eval_sets
    eval_names, eval_raw, exact_set = index.names, index.raw, index.exact

    reason = np.full(len(uniq), "", dtype=object)  # per distinct prompt
    match = np.full(len(uniq), -1, dtype=np.int64)
    sim = np.full(len(uniq), np.nan, dtype=np.float32)
    for j, p in enumerate(uniq.tolist()):
        i = exact_set.get(p)
        if i is not None:
            reason[j], match[j], sim[j] = "exact", i, 1.0

    if embed_fn is not None and len(eval_raw) and len(uniq):
        todo = np.flatnonzero(reason == "")
        if len(todo):
            if index.embeddings is not None:
                eval_emb = index.embeddings
            else:
                eval_emb = embed_in_batches(embed_fn, eval_raw, embed_batch_size)
            # Embed the raw text of one row per distinct prompt (the encoder sees real text).
            train_text = [str(raw_first[j]) for j in todo.tolist()]
            best = np.empty(len(todo), dtype=np.float32)
            arg = np.empty(len(todo), dtype=np.int64)
            # Embed in chunks too, so a 100k-prompt table never holds all embeddings at once.
            chunk = max(block_size, embed_batch_size)
            for c in range(0, len(todo), chunk):
                emb = embed_in_batches(embed_fn, train_text[c : c + chunk], embed_batch_size)
                if emb.shape[1] != eval_emb.shape[1]:
                    raise ValueError(
                        f"embed_fn gave dimension {emb.shape[1]} for training prompts but "
                        f"{eval_emb.shape[1]} for evaluation prompts"
                    )
                best[c : c + chunk], arg[c : c + chunk] = max_cosine(
                    emb, eval_emb, block_size=block_size
                )
            hit = best >= threshold
            reason[todo[hit]] = "near_duplicate"
            match[todo[hit]] = arg[hit]
            sim[todo[hit]] = best[hit]

    # Back to rows.
    bad_prompt = reason != ""
    outs = []
    offset = 0
    for t in tables:
        inv = inverse[offset : offset + len(t)]
        offset += len(t)
        row_bad = bad_prompt[inv]
        for r, m in zip(reason[inv[row_bad]], match[inv[row_bad]]):
            report.removed[r] = report.removed.get(r, 0) + 1
            per = report.by_eval_set.setdefault(eval_names[m], {})
            per[r] = per.get(r, 0) + 1
        outs.append(t.take(np.flatnonzero(~row_bad)))
    for r in ("exact", "near_duplicate"):
        n = int((reason == r).sum())
        if n:
            report.removed_prompts[r] = n
    for j in np.flatnonzero(bad_prompt)[:max_examples].tolist():
        report.examples.append(
            {
                "reason": reason[j],
                "eval_set": eval_names[match[j]],
                "train_prompt": str(raw_first[j])[:300],
                "eval_prompt": str(eval_raw[match[j]])[:300],
                "similarity": round(float(sim[j]), 4),
            }
        )
    report.eval_set_sizes = dict(index.sizes)
    report.rows_after = sum(len(t) for t in outs)
    if isinstance(data, TrainingData):
        return TrainingData(outs[0], outs[1]), report  # type: ignore[return-value]
    return outs[0], report  # type: ignore[return-value]


def standard_eval_sets(
    data_root: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str] = ("mmlu", "gsm8k", "mt_bench"),
) -> dict[str, list[str]]:
    """The paper's evaluation prompts from the data folder (all of them, before their own
    decontamination): MMLU (14,042), GSM8K (1,319), MT-Bench (80 questions, every turn); on
    request also ``routerbench_test``, the distinct prompts of RouterBench's ``*_test`` files (a
    transfer benchmark of experiments/run_grid.py), and ``routerbench_test_questions``, the same
    prompts without each file's shared few-shot demonstrations
    (:func:`~routellm_jax.data.sources.correctness.strip_shared_prefixes`): the set a mix whose
    RouterBench rows have their prefix stripped is checked against, since with the demonstrations
    every prompt of a file embeds the same.
    """
    from routellm_jax.data.sources import routellm_evals as re_

    evals = re_.evals_dir(data_root)
    out: dict[str, list[str]] = {}
    for name in names:
        if name == "mmlu":
            t = re_.read_mmlu(evals, decontaminate=False)
            out[name] = list(dict.fromkeys(t.prompt.tolist()))
        elif name == "gsm8k":
            t = re_.read_gsm8k(evals, decontaminate=False)
            out[name] = list(dict.fromkeys(t.prompt.tolist()))
        elif name == "mt_bench":
            qs = re_.read_mt_bench_questions(Path(evals) / "mt_bench" / "question.jsonl")
            out[name] = [turn for q in qs for turn in q.turns]
        elif name in ("routerbench_test", "routerbench_test_questions"):
            # Local imports: mixtures imports this module.
            from routellm_jax.data.mixtures import BUILTIN_SOURCES
            from routellm_jax.data.sources.correctness import strip_shared_prefixes
            from routellm_jax.paths import data_dir

            t = BUILTIN_SOURCES["routerbench_test"](data_dir(data_root)).outcomes
            if name == "routerbench_test_questions":
                t = strip_shared_prefixes(t)
            out[name] = list(dict.fromkeys(t.prompt.tolist()))
        else:
            raise ValueError(
                f"unknown evaluation set {name!r}; known: mmlu, gsm8k, mt_bench, routerbench_test, "
                "routerbench_test_questions"
            )
    return out
