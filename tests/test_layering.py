"""The package reads bottom-up: no module imports one from a layer above its own.

The layers are data below (:data:`LAYERS`, lowest first); a module belongs to the layer of its
longest listed prefix, and every module must belong to one. Every ``import`` and
``from ... import`` statement counts, at module level or inside a function (a local import that
runs back up is still a cycle waiting to happen). The root package's lazy ``routellm_jax.load``
(``importlib`` by name, not an import statement) is the one reference downward-to-top: it is the
public entry point, resolved only when asked for.
"""

from __future__ import annotations

import ast
from pathlib import Path

from routellm_jax import paths

PACKAGE = paths.repo_root() / "routellm_jax"

# (layer, module prefixes), lowest first.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The root package (exactly), where things live, the reachability probe, file hashes.
    ("base", ("routellm_jax", "routellm_jax.paths", "routellm_jax.net", "routellm_jax.integrity")),
    # Sources, records, labels, mixtures. The MMLU golden split reads only data and is a training
    # source (data.mixtures' mmlu_golden) as much as an evaluation filter, so it sits here.
    ("data", ("routellm_jax.data", "routellm_jax.eval.golden")),
    # Benchmarks and metrics: data and win rates in, numbers out; no model.
    ("eval", ("routellm_jax.eval",)),
    # Encoders, featurizers, architectures, and the executor and runners that run them.
    ("models", ("routellm_jax.models",)),
    ("training", ("routellm_jax.training",)),
    # Cards, manifest, download, cache, entry reading.
    ("zoo", ("routellm_jax.zoo",)),
    # load() and Router: routing policy on the runners.
    ("api", ("routellm_jax.api",)),
    # Export: calibrate, write, verify the round trip (through the API), pack.
    ("publish", ("routellm_jax.publish",)),
    ("serve", ("routellm_jax.serve",)),
    # Command lines may use every layer.
    (
        "cli",
        (
            "routellm_jax.cli",
            "routellm_jax.api_cli",
            "routellm_jax.eval.cli",
            "routellm_jax.training.cli",
            "routellm_jax.zoo.cli",
            "routellm_jax.serve.cli",
        ),
    ),
)
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str | None:
    """The layer whose longest prefix matches ``module`` (the root matches only itself)."""
    best, layer = -1, None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            root_only = prefix == "routellm_jax"
            hit = module == prefix or (not root_only and module.startswith(prefix + "."))
            if hit and len(prefix) > best:
                best, layer = len(prefix), name
    return layer


def imports_of(module: str) -> list[tuple[int, str]]:
    """``(line, imported routellm_jax module)`` for every import statement in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # `from routellm_jax import paths` imports the module routellm_jax.paths.
                child = f"{base}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else base))
    ours = {(line, m) for line, m in found if m == "routellm_jax" or m.startswith("routellm_jax.")}
    return sorted(ours)


def test_every_module_and_prefix_is_placed() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"
    prefixes = [p for _, ps in LAYERS for p in ps]
    stale = [p for p in prefixes if not any(m == p or m.startswith(p + ".") for m in MODULES)]
    assert not stale, f"LAYERS names prefixes that match no module: {stale}"


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for line, imported in imports_of(module):
            target = layer_of(imported)
            assert target is not None, f"{path}:{line}: {imported} is in no layer"
            if RANK[target] > RANK[own]:
                rel = path.relative_to(PACKAGE.parent)
                upward.append(f"{rel}:{line}: {module} ({own}) imports {imported} ({target})")
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


def test_the_checker_sees_local_and_from_imports() -> None:
    """The parser finds what the layering rests on: a function-local import (api's runner) and
    ``from package import module`` (resolved to the module)."""
    api_imports = {m for _, m in imports_of("routellm_jax.api")}
    assert "routellm_jax.models.inference" in api_imports  # imported inside Router.__init__
    judge = {m for _, m in imports_of("routellm_jax.data.judge_split")}
    assert "routellm_jax.paths" in judge  # `from routellm_jax import paths`
    assert layer_of("routellm_jax.eval.golden") == "data" and layer_of("routellm_jax") == "base"
    assert layer_of("routellm_jax.zoo.cli") == "cli" and layer_of("routellm_jax.zoo.hub") == "zoo"
