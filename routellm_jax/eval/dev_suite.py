"""The development suite: prompts grouped by task type, built from training-side data only.

A router is chosen on this suite, never on the evaluation sets (MMLU outside the golden split,
GSM8K test, MT-Bench). Every group is held out from the declared training mixes that are marked
dev-clean (``experiments/_mixtures.py``: ``DEV_CLEAN_MIXES``), by construction:

* ``code``: RouterBench MBPP training rows that the mixes' seeded RouterBench cut
  (:data:`ROUTERBENCH_CUT`, fraction 0.2, salt ``routerbench_train``) does not select and whose
  text is in no other correctness training file (LLMRouter grades MBPP too); the pair's own 0/1
  correctness (gpt-4-1106-preview vs Mixtral-8x7B).
* ``reasoning``: the same for RouterBench ARC-Challenge and Winogrande, a seeded part of them
  (:data:`REASONING_FRACTION`) so that the group is not twice the size of the others. Each prompt
  is its question alone: the file's shared few-shot demonstrations, longer than the encoder's
  window, are removed (:func:`~routellm_jax.data.sources.correctness.without_shared_prefix`),
  and questions a training file asks in its own format (RouterDC's ARC train) are dropped
  (:func:`question_line`).
* ``math``: RouterDC's MATH-prealgebra file (graded for 7 open ~7B models only, and in no mix),
  a seeded half. No strong/weak labels exist, so the group is a *difficulty proxy*: strong score 1,
  weak score the mean correctness of the 7 graded models, i.e. the gain of sending a problem to the
  strong model is the share of open models that fail it (for gpt-4 against Mixtral on GSM8K most of
  the gain is Mixtral's failures). Problems whose text is in any correctness training file
  (RouterBench, RouterDC, LLMRouter train) are dropped.
* ``open_ended``: the held-out judge split (``experiments/judge_heldout_split.txt``, which every mix
  removes): AlpacaEval preference share of the pair and arena-bench-v1 grades of the pair, the
  grades rescaled from 1-10 to 0-1 so that the two parts pool.
* ``knowledge``: the MMLU golden split's dev part (:data:`GOLDEN_DEV_FRACTION` of it, by a hash of
  the question with salt :data:`DEV_SALT`); the dev-clean mixes train on the rest only.

Two numbers per group: APGR (trapezoid over 11 quantile thresholds, as every benchmark here), and
the strong share when the router's threshold sends 50% of the whole suite to the strong model,
every group weighing the same in that 50% (:func:`group_shares`). The selection aggregate and the
inversion check are :class:`DevScores`' ``mean_apgr`` and ``inversion_margin`` (the smaller
strong share of code and math minus the open-ended share).

Example:
    >>> TASK_GROUPS
    ('code', 'math', 'reasoning', 'open_ended', 'knowledge')
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from routellm_jax.data.decontaminate import normalize_text
from routellm_jax.data.hashing import hash_fraction
from routellm_jax.data.judge_split import prompt_id as judge_prompt_id
from routellm_jax.data.judge_split import read_split
from routellm_jax.data.records import OutcomeTable
from routellm_jax.data.sources.correctness import (
    read_routerbench_csv,
    read_scores_json,
    strip_shared_prefixes,
)
from routellm_jax.data.sources.routellm_evals import STRONG_MODEL, WEAK_MODEL, evals_dir, read_mmlu
from routellm_jax.eval.benchmarks import Benchmark, benchmark_from_outcomes
from routellm_jax.eval.evaluate import evaluate_win_rates
from routellm_jax.eval.golden import golden_split_ids, prompt_id
from routellm_jax.eval.judge_heldout import judge_heldout_benchmarks
from routellm_jax.paths import data_dir as resolve_data_dir

TASK_GROUPS = ("code", "math", "reasoning", "open_ended", "knowledge")
# Where the strong model's advantage lies; their strong shares must exceed the open-ended one.
# Reasoning is reported, not constrained: Mixtral answers 77% of its ARC/Winogrande rows.
HARD_GROUPS = ("code", "math")
OPEN_GROUP = "open_ended"
DEV_SALT = "dev_suite"
# The golden MMLU questions with hash_fraction(q, DEV_SALT) >= 1 - this are the knowledge group;
# a dev-clean mix keeps only hash_fraction(q, DEV_SALT) < 1 - this of the golden split.
GOLDEN_DEV_FRACTION = 0.3
# The training mixes' RouterBench cut (experiments/_mixtures.py, TRAIN_FRACTIONS): rows it selects
# may be trained on, the others are dev rows.
ROUTERBENCH_CUT = {"fraction": 0.2, "salt": "routerbench_train"}
REASONING_FRACTION = 0.35
MATH_FRACTION = 0.5
MATH_FILE = Path("shuhao02__RouterDC/datasets/split2_model7/MATH_prealgebra.json")
ROUTERBENCH_DIR = Path("shuhao02__RouterDC/datasets/routerbench_zs")
ROUTERDC_DIR = Path("shuhao02__RouterDC/datasets/split2_model7")
LLMROUTER_TRAIN = Path("ulab-uiuc__LLMRouter/data/dcrouter_preprocessed/train.json")
SPLIT_FILE = "experiments/judge_heldout_split.txt"
SHARE = 0.5

GROUP_SOURCES = {
    "code": "RouterBench MBPP train, rows outside the mixes' 20% cut (pair labels)",
    "math": "RouterDC MATH-prealgebra, seeded half (proxy: 1 - mean correctness of 7 open models)",
    "reasoning": "RouterBench ARC-Challenge + Winogrande train outside the 20% cut, the question "
    "without the file's shared few-shot prefix, none asked in a training file (pair labels)",
    "open_ended": "held-out AlpacaEval + arena-bench-v1 judge split (pair preferences / grades)",
    "knowledge": "MMLU golden split, hashed 30% dev part (pair labels)",
}


def is_golden_dev(prompt: str) -> bool:
    """Whether a golden-split MMLU question belongs to the knowledge dev group.

    Example:
        >>> isinstance(is_golden_dev("What is 2+2?"), bool)
        True
    """
    return hash_fraction(str(prompt), DEV_SALT) >= 1.0 - GOLDEN_DEV_FRACTION


def in_routerbench_cut(prompt: str) -> bool:
    """Whether the training mixes' seeded RouterBench cut selects this prompt (then it is no dev
    row).

    Example:
        >>> isinstance(in_routerbench_cut("x"), bool)
        True
    """
    return hash_fraction(str(prompt), ROUTERBENCH_CUT["salt"]) < ROUTERBENCH_CUT["fraction"]


def _take_prompts(table: OutcomeTable, keep: Callable[[str], bool]) -> OutcomeTable:
    return table.take(np.array([keep(str(p)) for p in table.prompt], dtype=bool))


def _concat(name: str, parts: Sequence[Benchmark], **metadata) -> Benchmark:
    return Benchmark(
        name=name,
        prompts=np.concatenate([b.prompts for b in parts]),
        strong_scores=np.concatenate([b.strong_scores for b in parts]),
        weak_scores=np.concatenate([b.weak_scores for b in parts]),
        strong_model=parts[0].strong_model,
        weak_model=parts[0].weak_model,
        kind="correct" if all(b.kind == "correct" for b in parts) else "grade",
        metadata={"parts": {b.name: len(b) for b in parts}, **metadata},
    )


def question_line(prompt: str) -> str:
    """A prompt's question, normalised: its first line without a leading ``Question:`` label
    (RouterDC writes ``Question:<q>\\nAnswer:``, RouterBench ``<q>\\nA) ...``), so that one question
    is recognised across the two formats.

    Example:
        >>> question_line("Question:Why is the sky blue?\\nAnswer:"), question_line("Why is the sky blue?\\nA) x")
        ('why is the sky blue', 'why is the sky blue')
    """
    text = str(prompt).lstrip()
    if text[:9].lower() == "question:":
        text = text[9:]
    return normalize_text(text.split("\n", 1)[0])


def _routerbench_group(
    root: Path,
    files: Sequence[str],
    fraction: float,
    name: str,
    exclude: frozenset[str],
    exclude_questions: frozenset[str] = frozenset(),
) -> Benchmark:
    """The pair's correctness on the rows of RouterBench ``files`` outside the mixes' cut, a
    seeded ``fraction`` of them. With ``exclude_questions``, each file's shared few-shot prefix is
    removed (:func:`strip_shared_prefixes`) and a question whose :func:`question_line` is in
    ``exclude_questions`` (a training file asks it too, in its own format) is dropped."""

    parts = []
    for f in files:
        t = read_routerbench_csv(root / ROUTERBENCH_DIR / f"{f}_train.csv", skip_bad_rows=True)
        # The cut and the seeded sample are of the file's own text, as the mixes' cut is.
        t = _take_prompts(
            t,
            lambda p: (
                not in_routerbench_cut(p)
                and hash_fraction(p, DEV_SALT) < fraction
                and normalize_text(p) not in exclude
            ),
        )
        if exclude_questions:
            t = strip_shared_prefixes(t)  # one file: one source
            t = _take_prompts(t, lambda q: question_line(q) not in exclude_questions)
        parts.append(
            benchmark_from_outcomes(t, STRONG_MODEL, WEAK_MODEL, name=f, duplicates="mean")
        )
    return _concat(name, parts, source=GROUP_SOURCES[name])


def training_correctness_prompts(
    root: Path, *, routerbench_cut_only: bool = False
) -> frozenset[str]:
    """Normalised text of the prompts of the correctness training files: RouterDC and LLMRouter
    train (all rows) and RouterBench train (all rows, or with ``routerbench_cut_only`` only those in
    the mixes' cut). The groups drop these, so that a prompt repeated in another training file
    (LLMRouter grades MBPP too) is no dev prompt."""

    texts = _training_correctness_texts(root, routerbench_cut_only=routerbench_cut_only)
    return frozenset(normalize_text(t) for t in texts)


def _training_correctness_texts(root: Path, *, routerbench_cut_only: bool = False) -> set[str]:
    texts: set[str] = set()
    for f in sorted((root / ROUTERBENCH_DIR).glob("*_train.csv")):
        rb = read_routerbench_csv(f, skip_bad_rows=True).prompt.tolist()
        texts.update(p for p in rb if not routerbench_cut_only or in_routerbench_cut(p))
    for f in sorted((root / ROUTERDC_DIR).glob("*.json")):
        if f.stem.endswith(("_train", "-train")):
            texts.update(read_scores_json(f, skip_bad_rows=True).prompt.tolist())
    texts.update(read_scores_json(root / LLMROUTER_TRAIN, skip_bad_rows=True).prompt.tolist())
    return {str(t) for t in texts}


def math_proxy_benchmark(
    table: OutcomeTable, exclude: frozenset[str] = frozenset(), name: str = "math"
) -> Benchmark:
    """Graded open models' correctness -> the difficulty proxy (strong 1, weak = mean correctness),
    one row per prompt, prompts whose normalised text is in ``exclude`` dropped.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> t = OutcomeTable.from_records(
        ...     [Outcome("q", "a", 1.0), Outcome("q", "b", 0.0), Outcome("r", "a", 1.0)])
        >>> math_proxy_benchmark(t).weak_scores.tolist()
        [0.5, 1.0]
    """
    sums: dict[str, list[float]] = {}
    for p, s in zip(table.prompt, table.score):
        if normalize_text(str(p)) in exclude:
            continue
        sums.setdefault(str(p), []).append(float(s))
    if not sums:
        raise ValueError(f"{name}: no graded prompts left")
    prompts = np.empty(len(sums), dtype=object)
    prompts[:] = list(sums)
    weak = np.array([np.mean(v) for v in sums.values()], dtype=np.float64)
    return Benchmark(
        name=name,
        prompts=prompts,
        strong_scores=np.ones(len(sums)),
        weak_scores=weak,
        strong_model=STRONG_MODEL,
        weak_model=WEAK_MODEL,
        kind="grade",
        metadata={"proxy": "strong 1, weak = mean correctness of the graded models"},
    )


def _rescaled(bench: Benchmark, lo: float, hi: float) -> Benchmark:
    span = hi - lo
    return Benchmark(
        name=bench.name,
        prompts=bench.prompts,
        strong_scores=(bench.strong_scores - lo) / span,
        weak_scores=(bench.weak_scores - lo) / span,
        strong_model=bench.strong_model,
        weak_model=bench.weak_model,
        kind="grade",
        metadata=bench.metadata,
    )


def build_dev_suite(
    data_dir: str | os.PathLike[str] | None = None, split_file: str = SPLIT_FILE
) -> dict[str, Benchmark]:
    """The five task-type groups (:data:`TASK_GROUPS`), each a :class:`Benchmark` of the pair."""

    root = resolve_data_dir(data_dir)
    suite: dict[str, Benchmark] = {}
    elsewhere = training_correctness_prompts(root, routerbench_cut_only=True)
    suite["code"] = _routerbench_group(root, ["mbpp"], 1.0, "code", elsewhere)
    math_table = read_scores_json(root / MATH_FILE, skip_bad_rows=True, source="routerdc/MATH")
    math_table = _take_prompts(math_table, lambda p: hash_fraction(p, DEV_SALT) < MATH_FRACTION)
    # Every correctness training file, read once: the math group drops their texts, the
    # reasoning group their questions (RouterDC's ARC train asks about half of RouterBench's
    # ARC-Challenge questions, in another format).
    trained = _training_correctness_texts(root)
    suite["math"] = math_proxy_benchmark(math_table, frozenset(map(normalize_text, trained)))
    suite["reasoning"] = _routerbench_group(
        root,
        ["arc_challenge", "winograde"],
        REASONING_FRACTION,
        "reasoning",
        elsewhere,
        exclude_questions=frozenset(map(question_line, trained)),
    )
    judge = judge_heldout_benchmarks(root, read_split(split_file))
    suite["open_ended"] = _concat(
        "open_ended",
        [judge["alpaca_heldout"], _rescaled(judge["arena_heldout"], 1.0, 10.0)],
        source=GROUP_SOURCES["open_ended"],
    )
    ids = golden_split_ids()
    mmlu = read_mmlu(evals_dir(root), decontaminate=True)
    mmlu = _take_prompts(mmlu, lambda p: prompt_id(p) in ids and is_golden_dev(p))
    suite["knowledge"] = benchmark_from_outcomes(
        mmlu,
        STRONG_MODEL,
        WEAK_MODEL,
        name="knowledge",
        metadata={"source": GROUP_SOURCES["knowledge"]},
    )
    return suite


def dev_prompts(suite: Mapping[str, Benchmark]) -> list[str]:
    """Every prompt of the suite, group by group (for embedding caches and exclusion tests)."""
    return [str(p) for b in suite.values() for p in b.prompts]


def judge_ids(suite: Mapping[str, Benchmark]) -> frozenset[str]:
    """Judge-split ids of the open-ended prompts (what a mix's held-out split must name)."""
    return frozenset(judge_prompt_id(str(p)) for p in suite[OPEN_GROUP].prompts)


# ------------------------------------------------------------------------ scoring
def group_shares(win_rates: Mapping[str, np.ndarray], share: float = SHARE) -> dict[str, float]:
    """Each group's strong share when one threshold sends ``share`` of the suite to the strong
    model, every group weighing the same (a prompt weighs ``1 / (groups * group size)``). Prompts
    are taken from the highest win rate down; equal win rates keep the suite's order.

    Example:
        >>> s = group_shares({"a": np.array([0.9, 0.8]), "b": np.array([0.1, 0.2])})
        >>> s["a"], s["b"]
        (1.0, 0.0)
    """
    names = list(win_rates)
    rates = np.concatenate([np.asarray(win_rates[g], dtype=np.float64) for g in names])
    group = np.concatenate([np.full(len(win_rates[g]), i) for i, g in enumerate(names)])
    weight = np.concatenate(
        [np.full(len(win_rates[g]), 1.0 / (len(names) * len(win_rates[g]))) for g in names]
    )
    order = np.argsort(-rates, kind="stable")
    cum = np.cumsum(weight[order])
    # The first prompts whose weight reaches the share (a tiny tolerance for float sums).
    n_take = int(np.searchsorted(cum, share - 1e-12) + 1)
    chosen = np.zeros(len(rates), dtype=bool)
    chosen[order[:n_take]] = True
    return {g: float(chosen[group == i].mean()) for i, g in enumerate(names)}


@dataclass(frozen=True)
class DevScores:
    """One router's numbers on the suite."""

    router: str
    apgr: dict[str, float]
    strong_share: dict[str, float]
    # APGR of each source of a group that pools several (group -> source -> APGR), each scored
    # with its own thresholds; empty when the scores were recorded without them.
    source_apgr: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def mean_apgr(self) -> float:
        """The selection aggregate: the mean of the group APGRs (equal weights)."""
        return float(np.mean([self.apgr[g] for g in self.apgr]))

    @property
    def mean_source_apgr(self) -> float:
        """The revised aggregate (rule v2, experiments/results/README.md): the mean over groups of
        each group's mean source APGR (a one-source group: its APGR). A pooled group's APGR also
        rewards ranking one whole source above the other, which no threshold within one benchmark
        uses; per source, only the ranking within each counts. NaN without ``source_apgr``.

        Example:
            >>> DevScores("r", {"a": 0.6, "b": 0.5}, {}, {"b": {"x": 0.7, "y": 0.5}}).mean_source_apgr
            0.6
        """
        if not self.source_apgr:
            return float("nan")
        per_group = [
            float(np.mean(list(self.source_apgr[g].values()))) if g in self.source_apgr else a
            for g, a in self.apgr.items()
        ]
        return float(np.mean(per_group))

    @property
    def worst_apgr(self) -> float:
        return float(min(self.apgr.values()))

    @property
    def inversion_margin(self) -> float:
        """Smaller strong share of code and math minus the open-ended one (> 0: those task types
        get more strong calls than open-ended chat)."""
        hard = [self.strong_share[g] for g in HARD_GROUPS if g in self.strong_share]
        if not hard or OPEN_GROUP not in self.strong_share:
            return float("nan")  # a suite without those groups has no such comparison
        return float(min(hard) - self.strong_share[OPEN_GROUP])

    @classmethod
    def from_dict(cls, d: Mapping) -> DevScores:
        """Inverse of :meth:`to_dict` (the derived numbers are recomputed)."""
        sources = {g: dict(v) for g, v in d.get("source_apgr", {}).items()}
        return cls(str(d["router"]), dict(d["apgr"]), dict(d["strong_share_at_50"]), sources)

    def to_dict(self) -> dict:
        out = {
            "router": self.router,
            "apgr": self.apgr,
            "strong_share_at_50": self.strong_share,
            "mean_apgr": self.mean_apgr,
            "worst_apgr": self.worst_apgr,
            "inversion_margin": self.inversion_margin,
        }
        if self.source_apgr:
            out["source_apgr"] = self.source_apgr
            out["mean_source_apgr"] = self.mean_source_apgr
        return out


def score_dev_suite(
    suite: Mapping[str, Benchmark], win_rates: Mapping[str, np.ndarray], router: str = "router"
) -> DevScores:
    """Score per-group win rates (``{group: [n_group]}``) on the suite.

    Example:
        >>> b = Benchmark("t", np.array(["a", "b"], dtype=object), np.array([1.0, 1.0]),
        ...               np.array([0.0, 1.0]), "s", "w")
        >>> score_dev_suite({"t": b}, {"t": np.array([0.9, 0.1])}).strong_share["t"]
        0.5
    """

    apgr: dict[str, float] = {}
    sources: dict[str, dict[str, float]] = {}
    for g, bench in suite.items():
        rates = np.asarray(win_rates[g])
        apgr[g] = float(evaluate_win_rates(bench, rates, name=router).metrics.apgr_trapezoid)
        parts = bench.metadata.get("parts", {})
        # ``take`` keeps the metadata: parts count only while they still add up to the group.
        if len(parts) > 1 and sum(parts.values()) == len(bench):
            sources[g] = {}
            lo = 0
            for part, n in parts.items():
                piece = bench.take(np.arange(lo, lo + n))
                res = evaluate_win_rates(piece, rates[lo : lo + n], name=router)
                sources[g][part] = float(res.metrics.apgr_trapezoid)
                lo += n
    return DevScores(router, apgr, group_shares({g: win_rates[g] for g in suite}), sources)


def route_suite(
    suite: Mapping[str, Benchmark], fn: Callable[[list[str]], np.ndarray]
) -> dict[str, np.ndarray]:
    """Call ``fn(prompts) -> win rates`` once on the whole suite; split the answer by group."""
    prompts = dev_prompts(suite)
    rates = np.asarray(fn(prompts), dtype=np.float64)
    if rates.shape != (len(prompts),):
        raise ValueError(f"router gave win rates of shape {rates.shape} for {len(prompts)} prompts")
    out, lo = {}, 0
    for g, bench in suite.items():
        out[g] = rates[lo : lo + len(bench)]
        lo += len(bench)
    return out


# ------------------------------------------------------------------------ reports
def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def dev_table_markdown(rows: Sequence[DevScores], suite: Mapping[str, Benchmark]) -> str:
    """APGR per group, the mean and worst, and the strong share per task type at 50% overall.

    Example:
        >>> b = Benchmark("t", np.array(["a", "b"], dtype=object), np.array([1.0, 1.0]),
        ...               np.array([0.0, 1.0]), "s", "w")
        >>> r = score_dev_suite({"open_ended": b}, {"open_ended": np.array([0.9, 0.1])}, "x")
        >>> dev_table_markdown([r], {"open_ended": b}).splitlines()[2].startswith("| x |")
        True
    """
    groups = list(suite)
    head = " | ".join(f"{g} (n={len(suite[g])})" for g in groups)
    by_source = any(r.source_apgr for r in rows)
    lines = [
        f"| router | {head} | mean | worst |" + (" mean by source |" if by_source else ""),
        "|---|" + "---|" * (len(groups) + 2 + by_source),
    ]
    for r in rows:
        cells = " | ".join(f"{r.apgr[g]:.3f}" for g in groups)
        line = f"| {r.router} | {cells} | {r.mean_apgr:.3f} | {r.worst_apgr:.3f} |"
        lines.append(line + (f" {r.mean_source_apgr:.3f} |" if by_source else ""))
    pooled = [g for g in groups if any(g in r.source_apgr for r in rows)]
    if pooled:
        parts = [
            (g, p)
            for g in pooled
            for p in next(r for r in rows if g in r.source_apgr).source_apgr[g]
        ]
        lines += [
            "",
            "APGR per source of the groups that pool several (each with its own thresholds):",
            "",
            "| router | " + " | ".join(f"{g}: {p}" for g, p in parts) + " |",
            "|---|" + "---|" * len(parts),
        ]
        for r in rows:
            cells = " | ".join(
                f"{r.source_apgr[g][p]:.3f}" if g in r.source_apgr else "-" for g, p in parts
            )
            lines.append(f"| {r.router} | {cells} |")
    lines += [
        "",
        f"Strong share per task type at {_pct(SHARE)} overall (groups weighted equally):",
        "",
        "| router | " + " | ".join(groups) + " | code/math - open |",
        "|---|" + "---|" * (len(groups) + 1),
    ]
    for r in rows:
        cells = " | ".join(_pct(r.strong_share[g]) for g in groups)
        m = r.inversion_margin
        margin = "-" if np.isnan(m) else f"{100 * m:+.0f} pt"
        lines.append(f"| {r.router} | {cells} | {margin} |")
    return "\n".join(lines) + "\n"


def plot_strong_share(
    rows: Sequence[DevScores], path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Grouped bars: strong share per task type at 50% overall, one bar per router."""
    import matplotlib  # local: matplotlib loads slowly, and only plotting needs it

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    groups = list(rows[0].strong_share)
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    try:
        for i, r in enumerate(rows):
            vals = [100 * r.strong_share[g] for g in groups]
            ax.bar(x + i * width, vals, width, label=f"{r.router} (mean APGR {r.mean_apgr:.3f})")
        ax.axhline(100 * SHARE, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(x + width * (len(rows) - 1) / 2, groups)
        ax.set_ylabel("Strong model calls (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title or f"Strong share per task type at {_pct(SHARE)} overall (dev suite)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def write_dev_report(
    out: str | os.PathLike[str], rows: Sequence[DevScores], suite: Mapping[str, Benchmark]
) -> dict[str, Path]:
    """``dev_suite.md``, ``dev_suite.json`` and ``dev_suite.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "dev_suite.md"
    md.write_text(dev_table_markdown(rows, suite))
    js = out / "dev_suite.json"
    js.write_text(
        json.dumps(
            {
                "groups": {
                    g: {"n": len(b), "source": GROUP_SOURCES.get(g, g)} for g, b in suite.items()
                },
                "rows": [r.to_dict() for r in rows],
            },
            indent=1,
        )
    )
    png = plot_strong_share(rows, out / "dev_suite.png")
    return {"markdown": md, "json": js, "plot": png}
