"""docs/launch.md's recipes name only flags and config fields that exist: every ``routellm-jax``
command in its bash blocks (after ``srun``/``ssh --command=`` wrappers) parses with the real
command-line parser, and every ``--config.`` override applies to that experiment's config."""

from __future__ import annotations

import re
import shlex

import pytest

from routellm_jax import paths
from routellm_jax.cli import build_parser
from routellm_jax.training.config import load_config

DOC = paths.repo_root() / "docs" / "launch.md"


def launch_commands() -> list[list[str]]:
    """The argument lists after ``routellm-jax`` in the doc's bash blocks, wrappers removed."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    commands = []
    for line in "\n".join(blocks).splitlines():
        words = shlex.split(line)
        # gcloud ... --command='cd routellm-jax && routellm-jax train ...': the quoted part.
        words = [
            w
            for word in words
            for w in (shlex.split(word[10:]) if word.startswith("--command=") else [word])
        ]
        while "routellm-jax" in words:
            start = words.index("routellm-jax") + 1
            end = words.index("&&", start) if "&&" in words[start:] else len(words)
            if start < len(words) and words[start] != "&&":
                commands.append(words[start:end])
            words = words[end:]
    return commands


def test_the_doc_has_the_three_recipes() -> None:
    text = DOC.read_text()
    for heading in ("## TPU pod slice", "## SLURM GPU cluster", "## One host with several GPUs"):
        assert heading in text
    trains = [c for c in launch_commands() if c[0] == "train"]
    assert any("--distributed" in c and any(a.startswith("gs://") for a in c) for c in trains)
    assert any("--shared-workdir" in c for c in trains)
    assert "(docs/launch.md)" in (paths.repo_root() / "README.md").read_text()  # linked


@pytest.mark.parametrize("argv", launch_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_launch_command_parses(argv: list[str]) -> None:
    args = build_parser(argv).parse_args(argv)
    assert args._run is not None
    if argv[0] == "train":
        # Overrides of fields that do not exist (or of the wrong type) raise here.
        config = load_config(args.config, args.config_overrides)
        assert config.mesh.data * config.mesh.fsdp * config.mesh.tensor != 0
