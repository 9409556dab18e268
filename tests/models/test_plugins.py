"""Architectures from outside the repository: ``--plugin``, ``ROUTELLM_JAX_PLUGINS``, installed
entry points (looked up only for a name the table does not know), the card's record of the plugin
and the error that says what to install. ``tests/test_docs_plugin.py`` runs an installed plugin
package through the command line."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys

import jax
import pytest

from routellm_jax import cli
from routellm_jax.api import Router, RouterError
from routellm_jax.models import plugins, registry
from routellm_jax.zoo.card import ModelCard

MODELS = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")

PLUGIN = """
import dataclasses

from routellm_jax.models import registry

_base = registry.get_architecture("mf")
ARCHITECTURE = dataclasses.replace(_base, name="{name}", description="a plugin test router")
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path for throwaway plugin modules; everything they register is removed."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(registry.registered_names())
    loaded = set(plugins._LOADED)
    yield tmp_path
    for name in set(registry.registered_names()) - before:
        registry.unregister(name)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    for mod in [m for m in sys.modules if m.startswith("plugtest_")]:
        del sys.modules[mod]


def test_plugin_flag_registers_before_the_command_runs(plugin_dir, capsys) -> None:
    (plugin_dir / "plugtest_flag.py").write_text(PLUGIN.format(name="plugtest-flag"))
    # `route` fails on its own (no prompts) after the plugin loaded: the flag ran first.
    code = cli.main(["--plugin", "plugtest_flag", "route"])
    assert code == 2 and "give prompts" in capsys.readouterr().err
    assert registry.get_architecture("plugtest-flag").description == "a plugin test router"
    assert cli._command_name(["--plugin", "plugtest_flag", "route"]) == "route"


def test_env_var_modules_are_found_on_lookup(plugin_dir, monkeypatch) -> None:
    (plugin_dir / "plugtest_env.py").write_text(PLUGIN.format(name="plugtest-env"))
    monkeypatch.setenv(plugins.ENV_VAR, "plugtest_env")
    assert "plugtest-env" not in registry.registered_names()
    assert registry.get_architecture("plugtest-env").name == "plugtest-env"
    # Not installed: the card can only name the module.
    assert plugins.provenance("plugtest-env") == {"module": "plugtest_env"}


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(plugin_dir, capsys) -> None:
    (plugin_dir / "plugtest_broken.py").write_text("import not_a_module_anywhere\n")
    code = cli.main(["--plugin", "plugtest_broken", "route", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "plugin module 'plugtest_broken' failed to import: ModuleNotFoundError" in err
    (plugin_dir / "plugtest_empty.py").write_text("X = 1\n")
    assert plugins.load_module("plugtest_empty") == []  # defines nothing: nothing registered


def test_a_plugin_may_not_shadow_a_builtin(plugin_dir) -> None:
    (plugin_dir / "plugtest_shadow.py").write_text(PLUGIN.format(name="mf"))
    with pytest.raises(plugins.PluginError, match="name of a built-in architecture"):
        plugins.load_module("plugtest_shadow")


def test_unknown_architecture_says_how_plugins_are_found(capsys) -> None:
    with pytest.raises(registry.UnknownArchitectureError, match="--plugin MODULE"):
        registry.get_architecture("no-such-arch")


def test_entry_points_load_only_for_their_name(plugin_dir, monkeypatch) -> None:
    (plugin_dir / "plugtest_ep.py").write_text(PLUGIN.format(name="plugtest-ep"))
    ep = importlib.metadata.EntryPoint(
        name="plugtest-ep", value="plugtest_ep:ARCHITECTURE", group=plugins.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(plugins, "entry_points", lambda: {"plugtest-ep": ep})
    assert "plugtest-ep" in registry.names() and "plugtest_ep" not in sys.modules
    assert registry.get_architecture("plugtest-ep").name == "plugtest-ep"
    bad = importlib.metadata.EntryPoint(
        name="plugtest-bad", value="plugtest_missing:ARCHITECTURE", group=plugins.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(plugins, "entry_points", lambda: {"plugtest-bad": bad})
    with pytest.raises(plugins.PluginError, match="plugin module 'plugtest_missing'"):
        registry.get_architecture("plugtest-bad")


def test_card_names_the_plugin_and_loading_without_it_says_what_to_install(tmp_path) -> None:
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(models=MODELS, featurizer="hashing:8", text_dim=8, dim=2)
    router = Router.from_params("mf", cfg, arch.init(jax.random.key(0), cfg), name="p")
    plugin = {"module": "knn_router.knn", "distribution": "knn-router", "version": "0.2.0"}
    card = dataclasses.replace(router.card, architecture="knn", plugin=plugin)
    card.save(tmp_path / "card.json")
    back = ModelCard.load(tmp_path / "card.json")
    assert back.plugin == plugin
    with pytest.raises(RouterError, match=r"pip install 'knn-router==0\.2\.0'"):
        Router(back, router.params)
    # A built-in architecture's card has no plugin key at all (reads as before).
    router.card.save(tmp_path / "builtin.json")
    assert "plugin" not in (tmp_path / "builtin.json").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(
        (tmp_path / "card.json").read_text().replace('"version": "0.2.0"', '"version": 2')
    )
    with pytest.raises(Exception, match=r"plugin\.version: expected str"):
        ModelCard.load(bad)


def test_a_different_installed_plugin_version_is_a_warning(caplog) -> None:
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(models=MODELS, featurizer="hashing:8", text_dim=8, dim=2)
    router = Router.from_params("mf", cfg, arch.init(jax.random.key(0), cfg), name="v")
    # Any installed distribution stands in for the plugin package: only its version is read.
    have = importlib.metadata.version("pytest")
    card = dataclasses.replace(
        router.card, plugin={"module": "m", "distribution": "pytest", "version": "0.0.1"}
    )
    with caplog.at_level("WARNING", logger="routellm_jax.api"):
        Router(card, router.params)
    assert f"exported with plugin pytest 0.0.1, running with pytest {have}" in caplog.text
