"""Chatbot Arena human-preference battles -> :class:`ComparisonTable`.

Schema of ``lmsys/lmsys-arena-human-preference-55k``: ``id, model_a, model_b, prompt,
response_a, response_b, winner_model_a, winner_model_b, winner_tie`` where ``prompt`` is a JSON list
of the user turns and exactly one winner flag is 1. The older ``clean_battle`` layout with a single
``winner`` column (``model_a`` / ``model_b`` / ``tie`` / ``tie (bothbad)``) is accepted too.

The router sees the first user turn (``prompt_turns="first"``, as the paper routes on the first
turn); ``"join"`` joins all user turns with blank lines.

Local CSV / parquet / JSON(L) files are read by :func:`read_arena_battles`; :func:`load_arena_battles`
also fetches the file from the Hugging Face Hub when given a repo id (and the Hub is reachable).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import huggingface_hub
import numpy as np
import pandas as pd
from huggingface_hub import constants as hf_constants

from routellm_jax.data.model_names import ModelTable
from routellm_jax.data.records import OUTCOME_A, OUTCOME_B, OUTCOME_TIE, ComparisonTable
from routellm_jax.data.sources._common import (
    ReadReport,
    RowValidator,
    SourceUnavailableError,
    numeric,
    obj_array,
    read_records,
    require_columns,
    resolve_table,
    show,
)
from routellm_jax.net import probe

ARENA_55K_REPO = "lmsys/lmsys-arena-human-preference-55k"
ARENA_55K_FILE = "train.csv"
_WINNER_FLAGS = ("winner_model_a", "winner_model_b", "winner_tie")
_WINNER_WORDS = {
    "model_a": OUTCOME_A,
    "model_b": OUTCOME_B,
    "tie": OUTCOME_TIE,
    "tie (bothbad)": OUTCOME_TIE,
}


def _parse_turns(value: object) -> list[str] | None:
    """A JSON list of user turns (or an already-parsed list); None if malformed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list) or not value:
        return None
    if not isinstance(value[0], str) or not value[0].strip():
        return None
    return [t if isinstance(t, str) else "" for t in value]


def read_arena_battles(
    path: str | os.PathLike[str],
    *,
    prompt_turns: str = "first",
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "chatbot_arena",
) -> ComparisonTable:
    """Read Arena battles from a local CSV / parquet / JSON(L) file.

    Example:
        >>> import tempfile
        >>> row = {"id": 1, "model_a": "gpt-4-1106-preview", "model_b": "mixtral-8x7b-instruct-v0.1",
        ...        "prompt": ["Explain BT models.", "More?"], "response_a": "", "response_b": "",
        ...        "winner_model_a": 0, "winner_model_b": 1, "winner_tie": 0}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_arena_battles([row], Path(tmp) / "train.csv")
        ...     t = read_arena_battles(Path(tmp) / "train.csv")
        >>> t.prompt.tolist(), t.outcome.tolist()  # 0 = model_a won, 1 = model_b won, 2 = tie
        (['Explain BT models.'], [1])
    """
    if prompt_turns not in ("first", "join"):
        raise ValueError(f"prompt_turns must be 'first' or 'join', got {prompt_turns!r}")
    path = Path(path)
    df = read_records(path)
    require_columns(df, path, ["model_a", "model_b", "prompt"])
    table = resolve_table(table)
    v = RowValidator(path, len(df), skip_bad_rows=skip_bad_rows, report=report)

    turns = [_parse_turns(p) for p in df["prompt"].tolist()]
    bad_prompt = np.fromiter((t is None for t in turns), bool, len(turns))
    v.check(
        bad_prompt,
        "prompt",
        lambda i: (
            "must be a JSON list of user turns with a non-empty first turn, "
            f"got {show(df['prompt'].iloc[i])}"
        ),
    )
    model_a = v.models(df["model_a"], "model_a", table)
    model_b = v.models(df["model_b"], "model_b", table)
    same = (model_a == model_b) & (model_a != "")
    v.check(same, "model_b", lambda i: f"a model cannot battle itself ({model_a[i]!r})")

    outcome = np.full(len(df), -1, dtype=np.int8)
    if all(c in df.columns for c in _WINNER_FLAGS):
        flags = np.stack([numeric(df[c]) for c in _WINNER_FLAGS], axis=1)  # [n, 3]
        for j, col in enumerate(_WINNER_FLAGS):
            v.check(
                ~np.isin(flags[:, j], (0.0, 1.0)),
                col,
                lambda i, c=col: f"must be 0 or 1, got {show(df[c].iloc[i])}",
            )
        one_hot = np.nansum(flags, axis=1) == 1
        v.check(
            ~one_hot,
            "winner_model_a",
            lambda i: (
                "exactly one of winner_model_a / winner_model_b / winner_tie must be 1, got "
                f"{[show(df[c].iloc[i]) for c in _WINNER_FLAGS]}"
            ),
        )
        outcome = np.where(one_hot, np.argmax(np.nan_to_num(flags), axis=1), -1).astype(np.int8)
    elif "winner" in df.columns:
        words = df["winner"].map(lambda w: _WINNER_WORDS.get(w, -1) if isinstance(w, str) else -1)
        outcome = words.to_numpy(dtype=np.int8)
        v.check(
            outcome < 0,
            "winner",
            lambda i: f"must be one of {sorted(_WINNER_WORDS)}, got {show(df['winner'].iloc[i])}",
        )
    else:
        require_columns(df, path, list(_WINNER_FLAGS))  # raises, naming the missing columns
    keep = v.finish()

    if prompt_turns == "first":
        prompts = [t[0] for t, k in zip(turns, keep) if k]
    else:
        prompts = ["\n\n".join(t) for t, k in zip(turns, keep) if k]
    n = int(keep.sum())
    out = ComparisonTable(
        prompt=obj_array(prompts),
        model_a=model_a[keep],
        model_b=model_b[keep],
        outcome=outcome[keep],
        weight=np.ones(n, dtype=np.float32),
        source=obj_array([source] * n),
    )
    if report is not None:
        report.records += len(out)
    return out


def download_arena_battles(
    repo_id: str = ARENA_55K_REPO,
    filename: str = ARENA_55K_FILE,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    timeout: float = 10.0,
    offline: bool | None = None,
    token: str | bool | None = None,
) -> Path:
    """Fetch a battles file from a Hugging Face dataset repo; return its local path.

    ``offline=True`` (or ``HF_HUB_OFFLINE=1``) only looks in the local Hub cache. Any failure
    (no network, no such repo/file, gated dataset without a token) raises
    :class:`SourceUnavailableError` naming the repo and file.
    """

    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    if not offline:
        _probe_hub(endpoint or hf_constants.ENDPOINT, repo_id, filename, timeout)
    try:
        local = huggingface_hub.hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            repo_type="dataset",
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            endpoint=endpoint,
            etag_timeout=timeout,
            local_files_only=bool(offline),
            token=token,
        )
    except Exception as err:  # network, HTTP, cache-miss and auth errors all end here
        mode = "offline (local cache only)" if offline else f"timeout {timeout}s"
        raise SourceUnavailableError(
            f"could not fetch {filename!r} from the Hugging Face dataset {repo_id!r} ({mode}): "
            f"{type(err).__name__}: {err}. Download it where the Hub is reachable and pass the "
            "local file path instead."
        ) from err
    return Path(local)


def _probe_hub(endpoint: str, repo_id: str, filename: str, timeout: float) -> None:
    """Fail fast when the Hub is unreachable: huggingface_hub retries connection errors with
    back-off (tens of seconds), so one short request decides first. Any HTTP answer (even 401/404)
    means the Hub is reachable; hf_hub_download then reports the precise problem."""
    try:
        probe(endpoint.rstrip("/") + "/api/datasets/" + repo_id, timeout)
    except OSError as err:
        raise SourceUnavailableError(
            f"could not fetch {filename!r} from the Hugging Face dataset {repo_id!r}: {err}. "
            "Download it where the Hub is reachable and pass the local file path instead."
        ) from err


def load_arena_battles(
    path_or_repo: str | os.PathLike[str] = ARENA_55K_REPO,
    *,
    filename: str = ARENA_55K_FILE,
    prompt_turns: str = "first",
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    timeout: float = 10.0,
    offline: bool | None = None,
    source: str = "chatbot_arena",
) -> ComparisonTable:
    """A local file if ``path_or_repo`` exists, else ``repo_id`` on the Hub (see download).

    Example:
        >>> import tempfile
        >>> row = {"id": 1, "model_a": "gpt-4-1106-preview", "model_b": "mixtral-8x7b-instruct-v0.1",
        ...        "prompt": ["Explain BT models.", "More?"], "response_a": "", "response_b": "",
        ...        "winner_model_a": 0, "winner_model_b": 1, "winner_tie": 0}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_arena_battles([row], Path(tmp) / "battles.parquet")
        ...     t = load_arena_battles(Path(tmp) / "battles.parquet")  # local: no Hub access
        >>> t.model_a.tolist(), t.model_b.tolist()
        (['gpt-4-1106-preview'], ['mixtral-8x7b-instruct-v0.1'])
    """
    local = Path(path_or_repo)
    if not local.exists():
        local = download_arena_battles(
            str(path_or_repo), filename, timeout=timeout, offline=offline
        )
    return read_arena_battles(
        local,
        prompt_turns=prompt_turns,
        table=table,
        skip_bad_rows=skip_bad_rows,
        report=report,
        source=source,
    )


def write_arena_battles(rows: list[dict], path: str | os.PathLike[str]) -> None:
    """Write rows in the 55k schema (CSV or parquet by extension); ``prompt`` may be a list.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_arena_battles([{"id": 1, "model_a": "gpt-4-1106-preview",
        ...         "model_b": "mixtral-8x7b-instruct-v0.1", "prompt": ["hi"], "response_a": "",
        ...         "response_b": "", "winner_model_a": 1, "winner_model_b": 0, "winner_tie": 0}],
        ...         Path(tmp) / "battles.csv")
        ...     pd.read_csv(Path(tmp) / "battles.csv")["prompt"][0]  # a list is stored as JSON
        '["hi"]'
    """
    df = pd.DataFrame(rows)
    if "prompt" in df.columns:
        df["prompt"] = df["prompt"].map(lambda p: p if isinstance(p, str) else json.dumps(p))
    path = Path(path)
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
