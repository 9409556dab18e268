"""Readers for the RouteLLM evaluation sets (``lm-sys/RouteLLM``, ``routellm/evals``) and FastChat
single-answer judgment files.

Layout under the data folder (``routellm_jax.paths.data_dir()``)::

    lm-sys__RouteLLM/routellm/evals/
        mmlu/responses/mmlu_<subject>.csv   57 files: prompt, <weak>, <strong> (True/False)
        mmlu/contaminated_prompts.jsonl     rows {train_prompt, eval_prompt, ...}
        gsm8k/gsm8k_responses.csv           prompt, <weak>, <strong>, <model>_response ...
        gsm8k/contaminated_prompts.jsonl
        mt_bench/question.jsonl             {question_id, category, turns: [turn1, turn2]}
        mt_bench/contaminated_prompts.jsonl
    lm-sys__RouteLLM/benchmarks/mt-bench/gpt-4_single.jsonl
                                            FastChat judgments {question_id, model, score, turn}

Decontamination follows the reference: MMLU and GSM8K drop rows whose ``prompt`` is an
``eval_prompt`` of the list (14,042 -> 14,037 and 1,319 -> 1,307 rows); MT-Bench drops a question
when its first or second turn is listed (80 -> 72).

Model names are mapped to canonical names (``mistralai/Mixtral-8x7B-Instruct-v0.1`` ->
``mixtral-8x7b-instruct-v0.1``, :data:`WEAK_MODEL`); names unknown to the model table stay as written.

MMLU contains repeated prompt texts (14,037 rows, 13,932 distinct texts): rows are kept as rows, in
file order (subjects sorted by file name), and an :class:`OutcomeTable` holds one outcome per model per
row, so the k-th outcome of a prompt for one model belongs with the k-th outcome for the other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.model_names import UnknownModelError, canonical
from routellm_jax.data.records import OutcomeTable, _str_array
from routellm_jax.paths import data_dir

# Column names in the RouteLLM files, and the canonical names (routellm_jax.data.model_names) the
# tables carry; a test checks that the table maps the former to the latter.
STRONG_COLUMN = "gpt-4-1106-preview"
WEAK_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mixtral-8x7b-instruct-v0.1"

EVALS_SUBDIR = Path("lm-sys__RouteLLM") / "routellm" / "evals"
MT_BENCH_JUDGMENTS_SUBPATH = (
    Path("lm-sys__RouteLLM") / "benchmarks" / "mt-bench" / "gpt-4_single.jsonl"
)
NUM_MMLU_FILES = 57

_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


def evals_dir(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The ``routellm/evals`` folder under the data folder.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     (Path(root) / EVALS_SUBDIR).mkdir(parents=True)
        ...     evals_dir(root).relative_to(root).as_posix()
        'lm-sys__RouteLLM/routellm/evals'
    """

    path = data_dir(data_root) / EVALS_SUBDIR
    if not path.is_dir():
        raise FileNotFoundError(f"RouteLLM evaluation folder {path} does not exist")
    return path


def canonical_model(name: str, where: str | None = None) -> str:
    """The canonical spelling of a model name (:func:`routellm_jax.data.model_names.canonical`).
    A name the model table does not know is kept exactly as written (never guessed): commercial
    routers such as ``martian`` or a user's own model names are valid benchmark sides.

    Example:
        >>> canonical_model("mistralai/Mixtral-8x7B-Instruct-v0.1")
        'mixtral-8x7b-instruct-v0.1'
    """

    try:
        return canonical(name, where=where)
    except UnknownModelError:
        return name


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object")
            yield line_no, obj


def read_contaminated_prompts(path: str | os.PathLike[str]) -> list[str]:
    """The ``eval_prompt`` strings of a ``contaminated_prompts.jsonl`` file, in file order.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "contaminated_prompts.jsonl"
        ...     rows = [{"eval_prompt": "What is 2+2?", "train_prompt": "2+2?"}]
        ...     _ = path.write_text("".join(json.dumps(r) + "\\n" for r in rows))
        ...     read_contaminated_prompts(path)
        ['What is 2+2?']
    """
    path = Path(path)
    out = []
    for line_no, obj in _read_jsonl(path):
        value = obj.get("eval_prompt")
        if not isinstance(value, str):
            raise ValueError(f"{path}:{line_no}: field 'eval_prompt' missing or not a string")
        out.append(value)
    return out


def _parse_score_column(path: Path, column: str, values: Sequence[str], allow_missing: bool):
    out = np.empty(len(values), dtype=np.float64)
    for i, raw in enumerate(values):
        v = raw.strip()
        low = v.lower()
        if low in _TRUE:
            out[i] = 1.0
        elif low in _FALSE:
            out[i] = 0.0
        elif v == "" and allow_missing:
            out[i] = np.nan
        else:
            try:
                out[i] = float(v)
            except ValueError:
                raise ValueError(
                    f"{path}: row {i + 1} (after the header), column {column!r}: "
                    f"expected True/False or a number, got {raw!r}"
                ) from None
            if not np.isfinite(out[i]):
                if not allow_missing:
                    raise ValueError(
                        f"{path}: row {i + 1} (after the header), column {column!r}: "
                        f"missing/non-finite score {raw!r}"
                    )
                out[i] = np.nan
    return out


def _looks_numeric(values: Sequence[str]) -> bool:
    """Whether every non-empty cell is True/False or a number (auto-detected model columns; text
    columns such as RouterBench's ``oracle_model_to_route_to`` are not models)."""
    for raw in values:
        v = raw.strip()
        if not v or v.lower() in _TRUE or v.lower() in _FALSE:
            continue
        try:
            float(v)
        except ValueError:
            return False
    return True


def read_correctness_csv(
    path: str | os.PathLike[str],
    models: Sequence[str] | None = None,
    *,
    prompt_column: str = "prompt",
    source: str = "",
    allow_missing: bool = False,
) -> OutcomeTable:
    """Read a wide per-model score CSV: a prompt column and one column per model, cells True/False
    (correctness) or numbers (grades). Without ``models``, every column other than the prompt whose
    name does not end in ``_response``/``|model_response``/``|total_cost``, is not an id column and
    holds only booleans/numbers is a model.

    The table has, for each CSV row, one outcome per model in ``models`` order. ``allow_missing``
    lets empty cells be skipped (a model without a score on that row); otherwise they are errors.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "mmlu_anatomy.csv"
        ...     _ = path.write_text("prompt,gpt-4-1106-preview,mixtral-8x7b-instruct-v0.1\\n"
        ...                         "Which bone...?,True,False\\n")
        ...     t = read_correctness_csv(path, source="mmlu")
        >>> t.model.tolist(), t.score.tolist(), t.source.tolist()
        (['gpt-4-1106-preview', 'mixtral-8x7b-instruct-v0.1'], [1.0, 0.0], ['mmlu', 'mmlu'])
    """

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err
    if prompt_column not in df.columns:
        raise ValueError(f"{path}: no {prompt_column!r} column (columns: {list(df.columns)})")
    if models is None:
        skip = {prompt_column, "", "question_id", "sample_id", "eval_name", "id"}
        models = [
            c
            for c in df.columns
            if c not in skip
            and not c.startswith("Unnamed:")
            and not c.endswith("_response")
            and not c.endswith("|model_response")
            and not c.endswith("|total_cost")
            and _looks_numeric(df[c].tolist())
        ]
    else:
        missing = [m for m in models if m not in df.columns]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing} (columns: {list(df.columns)})")
    if not models:
        raise ValueError(f"{path}: no model columns")
    prompts = df[prompt_column].tolist()
    for i, p in enumerate(prompts):
        if p == "":
            raise ValueError(
                f"{path}: row {i + 1} (after the header), column {prompt_column!r}: empty"
            )
    n, m = len(prompts), len(models)
    scores = np.stack(
        [_parse_score_column(path, c, df[c].tolist(), allow_missing) for c in models], axis=1
    )  # [n, m]
    canon = [canonical_model(c, where=f"{path} column {c!r}") for c in models]
    keep = ~np.isnan(scores).reshape(-1)  # row-major: row 0 model 0, row 0 model 1, ...
    prompt_col = np.repeat(np.asarray(prompts, dtype=object), m)[keep]
    model_col = np.tile(np.asarray(canon, dtype=object), n)[keep]
    score_col = scores.reshape(-1)[keep].astype(np.float32)
    all_binary = bool(np.isin(score_col, (0.0, 1.0)).all())
    kind = "correct" if all_binary else "grade"
    return OutcomeTable(
        prompt=_str_array(prompt_col.tolist()),
        model=_str_array(model_col.tolist()),
        score=score_col,
        source=_str_array([source or path.stem] * len(score_col)),
        kind=_str_array([kind] * len(score_col)),
    )


def drop_prompts(table: OutcomeTable, prompts: Iterable[str]) -> tuple[OutcomeTable, int]:
    """Remove every row whose prompt is in ``prompts``; return the table and the number of
    removed rows.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> t = OutcomeTable.from_records([Outcome("a", "m", 1.0), Outcome("b", "m", 0.0)])
        >>> kept, removed = drop_prompts(t, ["a"])
        >>> len(kept), removed
        (1, 1)
    """
    banned = set(prompts)
    mask = np.fromiter((p not in banned for p in table.prompt), dtype=bool, count=len(table))
    return table.take(mask), int((~mask).sum())


def mmlu_files(evals: str | os.PathLike[str]) -> list[Path]:
    """The 57 MMLU response CSVs, sorted by name (the order rows are read in)."""
    folder = Path(evals) / "mmlu" / "responses"
    files = sorted(folder.glob("mmlu_*.csv"))
    if not files:
        raise FileNotFoundError(f"no mmlu_*.csv files in {folder}")
    return files


def read_mmlu(evals: str | os.PathLike[str], *, decontaminate: bool = True) -> OutcomeTable:
    """MMLU correctness of the paper's pair: 14,042 questions, 14,037 after decontamination.
    Each row's source is ``routellm/mmlu/<subject>``.
    """
    evals = Path(evals)
    tables = [
        read_correctness_csv(
            f, [WEAK_COLUMN, STRONG_COLUMN], source=f"routellm/mmlu/{f.stem.removeprefix('mmlu_')}"
        )
        for f in mmlu_files(evals)
    ]
    for t, f in zip(tables, mmlu_files(evals)):
        _check_binary(t, f)
    table = OutcomeTable.concat(tables)
    if decontaminate:
        table, _ = drop_prompts(
            table, read_contaminated_prompts(evals / "mmlu" / "contaminated_prompts.jsonl")
        )
    return table


def read_gsm8k(evals: str | os.PathLike[str], *, decontaminate: bool = True) -> OutcomeTable:
    """GSM8K correctness of the paper's pair: 1,319 questions, 1,307 after decontamination."""
    evals = Path(evals)
    path = evals / "gsm8k" / "gsm8k_responses.csv"
    table = read_correctness_csv(path, [WEAK_COLUMN, STRONG_COLUMN], source="routellm/gsm8k")
    _check_binary(table, path)
    if decontaminate:
        table, _ = drop_prompts(
            table, read_contaminated_prompts(evals / "gsm8k" / "contaminated_prompts.jsonl")
        )
    return table


def _check_binary(table: OutcomeTable, path: Path) -> None:
    bad = np.flatnonzero(~np.isin(table.score, (0.0, 1.0)))
    if bad.size:
        row = int(bad[0]) // 2 + 1
        raise ValueError(
            f"{path}: row {row} (after the header), column {table.model[bad[0]]!r}: "
            f"expected True/False, got {table.score[bad[0]]}"
        )


@dataclass(frozen=True)
class MTBenchQuestion:
    """One MT-Bench question; a router sees ``turns[0]``."""

    question_id: int
    category: str
    turns: tuple[str, ...]


def read_mt_bench_questions(path: str | os.PathLike[str]) -> list[MTBenchQuestion]:
    """Read a FastChat ``question.jsonl`` (``question_id``, ``category``, ``turns``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "question.jsonl"
        ...     row = {"question_id": 81, "category": "writing", "turns": ["Compose...", "Rewrite..."]}
        ...     _ = path.write_text(json.dumps(row) + "\\n")
        ...     read_mt_bench_questions(path)
        [MTBenchQuestion(question_id=81, category='writing', turns=('Compose...', 'Rewrite...'))]
    """
    path = Path(path)
    out, seen = [], set()
    for line_no, obj in _read_jsonl(path):
        qid = obj.get("question_id")
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise ValueError(f"{path}:{line_no}: field 'question_id' missing or not an integer")
        if qid in seen:
            raise ValueError(f"{path}:{line_no}: duplicate question_id {qid}")
        seen.add(qid)
        turns = obj.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise ValueError(f"{path}:{line_no}: field 'turns' must be a non-empty list of strings")
        category = obj.get("category", "")
        out.append(MTBenchQuestion(qid, str(category), tuple(turns)))
    return out


def read_mt_bench(
    evals: str | os.PathLike[str], *, decontaminate: bool = True
) -> list[MTBenchQuestion]:
    """The MT-Bench questions, decontaminated as the reference does (a question goes when its
    first or second turn is an ``eval_prompt``): 80 -> 72.
    """
    evals = Path(evals)
    questions = read_mt_bench_questions(evals / "mt_bench" / "question.jsonl")
    if decontaminate:
        banned = set(read_contaminated_prompts(evals / "mt_bench" / "contaminated_prompts.jsonl"))
        questions = [q for q in questions if not any(t in banned for t in q.turns[:2])]
    return questions


@dataclass(frozen=True)
class SingleJudgment:
    """One FastChat single-answer grade (``score == -1``: the judge's output could not be parsed)."""

    question_id: int
    model: str
    turn: int
    score: float


def read_single_judgments(path: str | os.PathLike[str]) -> list[SingleJudgment]:
    """Read a FastChat single-answer judgment file (``question_id, model, score, turn``), raw
    (``-1`` scores kept; :func:`judgments_to_outcomes` drops them).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "gpt-4_single.jsonl"
        ...     row = {"question_id": 81, "model": "gpt-4", "score": 9, "turn": 1}
        ...     _ = path.write_text(json.dumps(row) + "\\n")
        ...     read_single_judgments(path)
        [SingleJudgment(question_id=81, model='gpt-4', turn=1, score=9.0)]
    """
    path = Path(path)
    out = []
    for line_no, obj in _read_jsonl(path):
        for key in ("question_id", "model", "score", "turn"):
            if key not in obj:
                raise ValueError(f"{path}:{line_no}: field {key!r} missing")
        qid, model, score, turn = obj["question_id"], obj["model"], obj["score"], obj["turn"]
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise ValueError(f"{path}:{line_no}: field 'question_id' must be an integer")
        if not isinstance(model, str) or not model:
            raise ValueError(f"{path}:{line_no}: field 'model' must be a non-empty string")
        if not isinstance(turn, int) or isinstance(turn, bool) or turn < 1:
            raise ValueError(f"{path}:{line_no}: field 'turn' must be an integer >= 1")
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise ValueError(f"{path}:{line_no}: field 'score' must be a number, got {score!r}")
        if score != -1 and not 1 <= score <= 10:
            raise ValueError(f"{path}:{line_no}: field 'score' must be 1-10 or -1, got {score}")
        out.append(
            SingleJudgment(
                qid, canonical_model(model, f"{path}:{line_no}"), int(turn), float(score)
            )
        )
    return out


def judgments_to_outcomes(
    judgments: Sequence[SingleJudgment],
    questions: Sequence[MTBenchQuestion],
    *,
    source: str = "mt-bench",
) -> tuple[OutcomeTable, dict]:
    """One outcome per (question, model): the mean grade over the turns, ``-1`` grades dropped;
    the prompt is the question's first turn. Judgments of questions not in ``questions`` (e.g.
    decontaminated ones) are ignored. Returns the table and counts of what was dropped.

    Example:
        >>> q = [MTBenchQuestion(1, "x", ("hi", "more"))]
        >>> js = [SingleJudgment(1, "m", 1, 8.0), SingleJudgment(1, "m", 2, -1.0)]
        >>> t, info = judgments_to_outcomes(js, q)
        >>> t.score.tolist(), info["failed_scores_dropped"]
        ([8.0], 1)
    """
    by_id = {q.question_id: q for q in questions}
    sums: dict[tuple[int, str], list[float]] = {}
    failed = unknown = 0
    for j in judgments:
        if j.question_id not in by_id:
            unknown += 1
            continue
        if j.score == -1:
            failed += 1
            continue
        sums.setdefault((j.question_id, j.model), []).append(j.score)
    keys = sorted(sums)  # (question_id, model): deterministic order
    table = OutcomeTable(
        prompt=_str_array([by_id[q].turns[0] for q, _ in keys]),
        model=_str_array([m for _, m in keys]),
        score=np.array([np.mean(sums[k]) for k in keys], dtype=np.float32),
        source=_str_array([source] * len(keys)),
        kind=_str_array(["grade"] * len(keys)),
    )
    return table, {"failed_scores_dropped": failed, "judgments_of_other_questions": unknown}


def read_mt_bench_judgments(
    path: str | os.PathLike[str], questions: Sequence[MTBenchQuestion]
) -> OutcomeTable:
    """:func:`read_single_judgments` + :func:`judgments_to_outcomes` in one call.

    Example:
        >>> import tempfile
        >>> qs = [MTBenchQuestion(81, "writing", ("Compose...", "Rewrite..."))]
        >>> rows = [{"question_id": 81, "model": "gpt-4", "score": s, "turn": t}
        ...         for t, s in ((1, 9), (2, 7))]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "gpt-4_single.jsonl"
        ...     _ = path.write_text("".join(json.dumps(r) + "\\n" for r in rows))
        ...     t = read_mt_bench_judgments(path, qs)
        >>> t.prompt.tolist(), t.model.tolist(), t.score.tolist()
        (['Compose...'], ['gpt-4'], [8.0])
    """
    table, _ = judgments_to_outcomes(read_single_judgments(path), questions)
    return table
