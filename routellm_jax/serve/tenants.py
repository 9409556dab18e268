"""Per-tenant calibration: a request header picks a named calibration table.

A router's card holds one calibration table, made on a stated reference set (chat-like prompts);
a tenant whose traffic is mostly maths or code buys a different strong share with the same
threshold. The server can hold named prompt sets, one per tenant, given at start-up
(``routellm-jax serve --calibration NAME=FILE``): each is scored once by every served router and
turned into a calibration table with the zoo's own calibration code
(:func:`routellm_jax.zoo.card.calibration_from_win_rates`, what ``publish.export.calibrate`` and
``Router.calibrate`` use). A request carrying ``x-routellm-calibration: NAME`` then gets:

* ``router-<name>@<share>``: the threshold sending that share of the tenant's prompts strong, and
  its own share controller started from the tenant's table;
* ``router-<name>:spend=<target>``: a spend controller whose reference is the tenant's prompts.

An unknown name is a 400 naming the header and the names the server has; it changes no state.

A prompt file is UTF-8 text with one prompt per line (blank lines skipped), or JSON Lines
(``.jsonl``) with one object per line holding a ``prompt`` string.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.serve.budget import ReferenceTable
from routellm_jax.zoo.card import Calibration, calibration_from_win_rates

CALIBRATION_HEADER = "x-routellm-calibration"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CalibrationConfigError(ValueError):
    """A calibration set that cannot be used; the message names the file and line or the flag."""


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """Named reference prompts (a tenant's calibration set, or the spend reference) and what
    they are (``source``: the file, and how many prompts).

    Example:
        >>> PromptSet("maths", ("1+1?", "2+2?"), "maths.txt").describe()
        'maths: 2 prompts from maths.txt'
    """

    name: str
    prompts: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise CalibrationConfigError(
                f"calibration name {self.name!r}: use 1-64 letters, digits, '_', '.' or '-'"
            )
        if not self.prompts:
            raise CalibrationConfigError(f"{self.source}: holds no prompt")

    def describe(self) -> str:
        return f"{self.name}: {len(self.prompts)} prompts from {self.source}"


def read_prompt_file(path: str | Path) -> tuple[str, ...]:
    """The prompts of a text file (one a line) or a ``.jsonl`` file (``{"prompt": ...}`` a line);
    errors name the file and line.

    Example:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("first prompt\\n\\nsecond prompt\\n")
        >>> read_prompt_file(f.name); os.unlink(f.name)
        ('first prompt', 'second prompt')
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationConfigError(f"{path}: no such prompt file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationConfigError(f"{path}: cannot read ({err})") from None
    prompts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                record: Any = json.loads(line)
            except ValueError as err:
                raise CalibrationConfigError(f"{path}, line {lineno}: not JSON ({err})") from None
            prompt = record.get("prompt") if isinstance(record, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise CalibrationConfigError(
                    f"{path}, line {lineno}: needs a non-empty string field 'prompt'"
                )
            prompts.append(prompt)
        else:
            prompts.append(line.strip())
    if not prompts:
        raise CalibrationConfigError(f"{path}: holds no prompt")
    return tuple(prompts)


def parse_calibration_flag(value: str) -> PromptSet:
    """``NAME=FILE`` (the ``--calibration`` flag) -> the named prompt set read from FILE.

    Example:
        >>> parse_calibration_flag("no-equals-sign")
        Traceback (most recent call last):
        ...
        routellm_jax.serve.tenants.CalibrationConfigError: --calibration no-equals-sign: use NAME=FILE
    """
    name, eq, file = value.partition("=")
    if not eq or not name or not file:
        raise CalibrationConfigError(f"--calibration {value}: use NAME=FILE")
    prompts = read_prompt_file(file)
    return PromptSet(name, prompts, f"{file} ({len(prompts)} prompts)")


def reference_from_calibration(table: Calibration) -> ReferenceTable:
    """A calibration table as the share controller's :class:`ReferenceTable` (the same
    interpolation as :meth:`routellm_jax.api.Router.threshold_for_share`).

    Example:
        >>> t = calibration_from_win_rates([0.1, 0.5, 0.9], strong="s", weak="w", reference="3")
        >>> reference_from_calibration(t).threshold(1.0)
        0.1
    """
    top = float(np.nextafter(np.float32(table.max_win_rate), np.float32(np.inf)))
    return ReferenceTable(tuple(table.shares), tuple(table.thresholds), top, table.min_win_rate)


def fit_calibration(
    win_rates: Sequence[float], prompt_set: PromptSet, strong: str, weak: str
) -> Calibration:
    """The calibration table of a tenant's prompts from the served pair's win rates on them."""
    return calibration_from_win_rates(
        np.asarray(win_rates, np.float64),
        strong=strong,
        weak=weak,
        reference=f"tenant calibration {prompt_set.describe()}",
    )
