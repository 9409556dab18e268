"""No module, tool, experiment or test edits ``sys.path`` (or a child's ``PYTHONPATH``).

The package is installed; tools and experiments run from the repository root as modules
(``python -m tools.<name>``, ``python -m experiments.<name>``); tests get the root on the path from
the root ``conftest.py`` and their own folder from pytest's default import mode.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

SYS_PATH_PATCH = re.compile(
    r"\bsys\.path\s*(?:\.\s*(?:insert|append|extend)\b|\[[^\]]*\]\s*=|[+]?=(?!=))"
    r"|\bsyspath_prepend\b"
    r"|\[\s*[\"']PYTHONPATH[\"']\s*\]\s*="
)

# Owned by other engineers when this check came in; each still patches (the test below fails once
# one is clean, so the entry is then removed here).
PENDING: set[str] = set()


def python_files() -> list[Path]:
    files = [REPO_ROOT / "conftest.py"]
    for top in ("routellm_jax", "tools", "experiments", "tests"):
        files += sorted((REPO_ROOT / top).rglob("*.py"))
    return files


# A test may put the throwaway modules it writes into its own tmp_path on the path (a plugin a
# user would have on PYTHONPATH); that reaches no repository code.
TEST_OWN_MODULES = re.compile(r"\bsyspath_prepend\(\s*str\(\s*tmp_path\s*\)\s*\)")


def patches(text: str) -> list[tuple[int, str]]:
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if SYS_PATH_PATCH.search(line) and not TEST_OWN_MODULES.search(line)
    ]


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("sys.path.insert(0, str(REPO))", True),
        ("    sys.path.append(here)", True),
        ("sys.path[:0] = [root]", True),
        ("sys.path += [root]", True),
        ("monkeypatch.syspath_prepend(str(tmp_path))", False),
        ("monkeypatch.syspath_prepend(str(REPO_ROOT))", True),
        ('env["PYTHONPATH"] = os.pathsep.join([str(HERE), old])', True),
        ("if root not in sys.path:", False),
        ("print(sys.path == before)", False),
    ],
)
def test_pattern(line, found):
    assert bool(patches(line)) is found


def test_no_sys_path_patches():
    hits = []
    for path in python_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel in PENDING or path == Path(__file__).resolve():
            continue
        hits += [f"{rel}:{n}: {line}" for n, line in patches(path.read_text())]
    assert not hits, "import the installed package, or run as python -m:\n" + "\n".join(hits)


def test_pending_files_still_pending():
    clean = [
        rel
        for rel in sorted(PENDING)
        if not (REPO_ROOT / rel).is_file() or not patches((REPO_ROOT / rel).read_text())
    ]
    assert not clean, f"no sys.path patch left in {clean}: remove them from PENDING"
