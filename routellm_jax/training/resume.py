"""Which config a resumed run trains with: the checkpoint's, changed only where the command says.

A checkpoint stores the config it was trained with. ``--resume`` continues that run, so the
experiment file's current values must not silently replace it (a file edited from 1000 to 3000
steps would change the schedule mid-run). :func:`resume_config` compares the two: keys that
differ are an error listing them (dotted), unless a ``--config.KEY=VALUE`` override names them,
in which case the override wins. Fields the trainer derives are not compared (an empty
``arch_config.models`` in the file means "every model in the data", which the checkpoint records
filled in), nor is ``data.data_dir``, where the data lives on this machine.

Example:
    >>> from routellm_jax.training.config import default_config
    >>> saved, now = default_config(), default_config()
    >>> now.steps, now.optimizer.lr = 300, 0.5
    >>> [key for key, _, _ in config_differences(now, saved)]
    ['optimizer.lr', 'steps']
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from routellm_jax.training import config as config_lib
from routellm_jax.training.checkpoints import _read_item_json, checkpoint_dir, verify_manifest

# Keys whose value in the file may legitimately differ from the checkpoint's (see module doc).
LOCATION_KEYS = ("data.data_dir",)


class ResumeConfigError(config_lib.ConfigError):
    """The experiment file no longer matches the checkpoint it would resume."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out  # an empty section is the same as a missing one (open dicts start empty)
    return {prefix[:-1]: obj}


def config_differences(
    current: ml_collections.ConfigDict, saved: ml_collections.ConfigDict
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, current value, saved value)`` for every key that differs, sorted; a key on
    one side only has ``None`` on the other. Derived and location keys are left out."""
    now = _flatten(config_lib.to_json(current))
    then = _flatten(config_lib.to_json(saved))
    diffs = []
    for key in sorted(set(now) | set(then)):
        a, b = now.get(key), then.get(key)
        if a == b or key in LOCATION_KEYS:
            continue
        if key == "arch_config.models" and not a:
            continue  # the trainer fills an empty table from the data and saves it filled
        diffs.append((key, a, b))
    return diffs


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys of ``--config.KEY=VALUE`` overrides.

    Example:
        >>> override_keys(["--config.steps=9", "--config.optimizer.lr=1e-3"])
        ['steps', 'optimizer.lr']
    """
    keys = []
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        keys.append(text[len("config.") :].split("=", 1)[0])
    return keys


def saved_config(
    workdir: str | os.PathLike[str], step: int | None = None
) -> tuple[int, ml_collections.ConfigDict] | None:
    """``(step, config)`` saved with checkpoint ``step`` of a run (the newest when None);
    ``None`` when the run has no checkpoint yet (or no step ``step``: the trainer reports that).
    The step's files are verified first: a damaged checkpoint raises
    :class:`~routellm_jax.training.checkpoints.CheckpointCorruptError` naming the newest step that
    verifies, as a resume would."""
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        return None
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())
    if step is None:
        if not steps:
            return None
        step = steps[-1]
    elif step not in steps:
        return None
    step_dir = Path(directory) / str(step)
    verify_manifest(step_dir)
    return step, config_lib.from_json(_read_item_json(step_dir, "config"))


def resume_config(
    current: ml_collections.ConfigDict,
    saved: ml_collections.ConfigDict,
    overrides: Sequence[str] = (),
    *,
    where: str = "the checkpoint",
) -> ml_collections.ConfigDict:
    """The config a resumed run uses: ``saved`` with ``overrides`` applied.

    ``current`` (the experiment file with ``overrides`` applied) must agree with ``saved`` on
    every key the overrides do not name; otherwise :class:`ResumeConfigError` lists the keys.
    A location key (``data.data_dir``) takes the current value when it has one.

    Example:
        >>> from routellm_jax.training.config import default_config
        >>> saved, now = default_config(), default_config()
        >>> now.steps = 300
        >>> resume_config(now, saved, ["--config.steps=300"]).steps
        300
        >>> resume_config(now, saved)
        Traceback (most recent call last):
        ...
        routellm_jax.training.resume.ResumeConfigError: the experiment config differs from the one saved in the checkpoint at steps (now 300, saved 100); resume with the checkpoint's config by restoring the file, or pass --config.KEY=VALUE for each key you mean to change: --config.steps=300
    """
    named = override_keys(overrides)
    unexplained = [
        (key, a, b)
        for key, a, b in config_differences(current, saved)
        if not any(key == n or key.startswith(n + ".") for n in named)
    ]
    if unexplained:
        listed = "; ".join(f"{key} (now {a!r}, saved {b!r})" for key, a, b in unexplained)
        suggested = " ".join(
            shlex.quote(f"--config.{key}={a if isinstance(a, str) else repr(a)}")
            for key, a, _ in unexplained
        )
        raise ResumeConfigError(
            f"the experiment config differs from the one saved in {where} at {listed}; resume "
            "with the checkpoint's config by restoring the file, or pass --config.KEY=VALUE for "
            f"each key you mean to change: {suggested}"
        )
    config = config_lib.apply_overrides(copy.deepcopy(saved), overrides)
    for key in LOCATION_KEYS:
        node_path, _, leaf = key.rpartition(".")
        src, dst = current, config
        for part in node_path.split("."):
            src, dst = src[part], dst[part]
        if src.get(leaf):
            dst[leaf] = src[leaf]
    return config
