"""The README's promises: its two set-up commands are the ones CI and the bundled-zoo test run,
and its number tables are the ones the result files give (no hand-typed numbers)."""

from __future__ import annotations

import re
import shlex

from routellm_jax import paths
from tools import readme_tables

ROOT = paths.repo_root()


def setup_commands() -> list[str]:
    """The bash blocks of the README's "Set-up" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def readme_route_args() -> list[str]:
    """The arguments of ``routellm-jax`` in the README's first (install + main job) command."""
    install, main_job = setup_commands()[0].split("&&")
    assert install.strip() == "pip install -e ."
    words = shlex.split(main_job)
    assert words[0] == "routellm-jax"
    return words[1:]


def test_exactly_two_setup_commands_and_ci_runs_the_second() -> None:
    commands = setup_commands()
    assert len(commands) == 2, commands
    assert readme_route_args()[0] == "route"
    test_command = commands[1].split("&&", 1)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_tables_match_result_files() -> None:
    assert readme_tables.main(["--check"]) == 0, (
        "README tables stale: python -m tools.readme_tables"
    )
