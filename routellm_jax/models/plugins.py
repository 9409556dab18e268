"""Architectures from outside the repository: installed plugin packages and named modules.

A plugin is a Python module that defines one or more :class:`~routellm_jax.models.registry.
Architecture` objects. The framework finds it in two ways:

* **Installed packages** declare an entry point in the group ``routellm_jax.architectures``,
  named after the architecture, in their ``pyproject.toml``::

      [project.entry-points."routellm_jax.architectures"]
      knn = "my_routers.knn:ARCHITECTURE"

  The value is an ``Architecture``, a module defining ``ARCHITECTURE`` (or ``ARCHITECTURES``), or
  a function returning one or several. Nothing is imported until an architecture of that name is
  asked for (:func:`~routellm_jax.models.registry.get_architecture` on a name it does not know).
* **Modules that are not installed** are named with ``routellm-jax --plugin MODULE`` (repeatable,
  any command) or ``ROUTELLM_JAX_PLUGINS=mod_a,mod_b``; the module must be importable (on
  ``PYTHONPATH``). Importing it registers the architectures it defines.

A plugin that fails to import is a :class:`PluginError` naming the module (and the package that
declared it). :func:`provenance` says which installed distribution provides a non-built-in
architecture, so a zoo card can name the package (and version) to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import types
from collections.abc import Iterable
from typing import Any

from routellm_jax.models import registry

ENTRY_POINT_GROUP = "routellm_jax.architectures"
ENV_VAR = "ROUTELLM_JAX_PLUGINS"

log = logging.getLogger(__name__)

# Modules already imported by load_module, and the module each plugin architecture came from
# (what provenance() reports); the architecture table is the only other state plugins add.
_LOADED: set[str] = set()
_SOURCE: dict[str, str] = {}


class PluginError(ImportError):
    """A plugin module or entry point that cannot be imported or defines no architecture."""


def _architectures_of(obj: Any, where: str) -> list[registry.Architecture]:
    """The architectures an entry-point value or module defines."""
    if isinstance(obj, registry.Architecture):
        return [obj]
    if isinstance(obj, types.ModuleType):
        found: list[registry.Architecture] = []
        single = getattr(obj, "ARCHITECTURE", None)
        if isinstance(single, registry.Architecture):
            found.append(single)
        many = getattr(obj, "ARCHITECTURES", ())
        found += [a for a in many if isinstance(a, registry.Architecture)]
        return found
    if callable(obj):
        result = obj()
        if isinstance(result, registry.Architecture):
            return [result]
        if isinstance(result, Iterable):
            return [a for a in result if isinstance(a, registry.Architecture)]
        raise PluginError(f"{where}: returned {type(result).__name__}, expected an Architecture")
    raise PluginError(
        f"{where}: is a {type(obj).__name__}, expected an Architecture, a module defining "
        "ARCHITECTURE, or a function returning one"
    )


def _register_all(archs: Iterable[registry.Architecture], module: str) -> list[str]:
    names = []
    for arch in archs:
        if registry.is_builtin(arch.name):
            raise PluginError(
                f"plugin architecture {arch.name!r} ({arch.init.__module__}) has the name of a "
                "built-in architecture; rename it"
            )
        registry.register(arch, overwrite=True)
        _SOURCE[arch.name] = module
        names.append(arch.name)
    return names


def load_module(name: str) -> list[str]:
    """Import plugin module ``name`` and register the architectures it defines (``ARCHITECTURE``,
    ``ARCHITECTURES``, or its own :func:`~routellm_jax.models.registry.register` calls). Returns
    the names it defined; importing the same module again does nothing.

    Example:
        >>> load_module("routellm_jax.models.no_such_plugin")
        Traceback (most recent call last):
        ...
        routellm_jax.models.plugins.PluginError: plugin module 'routellm_jax.models.no_such_plugin' failed to import: ModuleNotFoundError: No module named 'routellm_jax.models.no_such_plugin'
    """
    name = name.strip()
    if not name:
        raise PluginError("plugin module name is empty")
    if name in _LOADED:
        return []
    before = set(registry.registered_names())
    try:
        module = importlib.import_module(name)
    except Exception as err:  # any failure inside the plugin is the plugin's, reported as one line
        raise PluginError(
            f"plugin module {name!r} failed to import: {type(err).__name__}: {err}"
        ) from err
    defined = _register_all(_architectures_of(module, f"plugin module {name!r}"), name)
    _LOADED.add(name)
    new = sorted(set(defined) | (set(registry.registered_names()) - before))
    log.info("plugin module %s: architectures %s", name, new)
    return new


def env_modules() -> list[str]:
    """The module names in ``ROUTELLM_JAX_PLUGINS`` (comma-separated; blanks ignored).

    Example:
        >>> os.environ[ENV_VAR] = "my_routers.knn, other"; env_modules()
        ['my_routers.knn', 'other']
        >>> del os.environ[ENV_VAR]
    """
    return [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]


def load_modules(names: Iterable[str] = ()) -> list[str]:
    """Import ``names`` and then the modules of ``ROUTELLM_JAX_PLUGINS``; the architectures
    they define, in order."""
    defined: list[str] = []
    for name in [*names, *env_modules()]:
        defined += load_module(name)
    return defined


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Architecture name -> entry point, over the installed distributions (nothing imported)."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str] | None:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    return dist.metadata["Name"], dist.version


def load_entry_point(name: str) -> bool:
    """Load the entry point that declares architecture ``name``; False when none does.

    An entry point that fails to import raises :class:`PluginError` naming its module and the
    distribution that declared it.
    """
    ep = entry_points().get(name)
    if ep is None:
        return False
    dist = _dist_of(ep)
    where = f"entry point {name!r} = {ep.value!r}" + (f" of {dist[0]} {dist[1]}" if dist else "")
    try:
        obj = ep.load()
    except Exception as err:
        raise PluginError(
            f"plugin module {ep.module!r} ({where}) failed to import: {type(err).__name__}: {err}"
        ) from err
    defined = _register_all(_architectures_of(obj, where), ep.module)
    if name not in defined and name not in registry.registered_names():
        raise PluginError(f"{where}: defines {defined or 'no architecture'}, not {name!r}")
    log.info("architecture %s from %s", name, where)
    return True


def resolve(name: str) -> bool:
    """Make architecture ``name`` known if a plugin provides it: the ``ROUTELLM_JAX_PLUGINS``
    modules, then the installed entry points. True when it is known afterwards."""
    load_modules()
    if name in registry.registered_names():
        return True
    return load_entry_point(name)


def provenance(arch_name: str) -> dict[str, str]:
    """Where a non-built-in architecture comes from: ``{"module", "distribution", "version"}``
    (the plugin module that registered it, else the module of its ``init``; the installed
    distribution that declares it as an entry point, else the one that holds that module; only
    ``module`` for a module that is not installed); ``{}`` for a built-in one.

    Example:
        >>> provenance("mf")
        {}
    """
    if registry.is_builtin(arch_name):
        return {}
    module = _SOURCE.get(arch_name) or registry.get_architecture(arch_name).init.__module__
    info = {"module": module}
    ep = entry_points().get(arch_name)
    dist = _dist_of(ep) if ep is not None else None
    if dist is None:
        top = module.split(".")[0]
        names = importlib.metadata.packages_distributions().get(top, [])
        if names:
            try:
                dist = (names[0], importlib.metadata.version(names[0]))
            except importlib.metadata.PackageNotFoundError:
                dist = None
    if dist is not None:
        info["distribution"], info["version"] = dist
    return info


def install_hint(plugin: dict[str, Any]) -> str:
    """How to make a card's plugin architecture available, from its ``plugin`` record.

    Example:
        >>> install_hint({"module": "knn_router.knn", "distribution": "knn-router", "version": "0.2.0"})
        "install the plugin package: pip install 'knn-router==0.2.0' (it provides module knn_router.knn)"
        >>> install_hint({"module": "my_knn"})
        'make module my_knn importable and pass --plugin my_knn (or ROUTELLM_JAX_PLUGINS=my_knn)'
    """
    module = plugin.get("module", "")
    if plugin.get("distribution"):
        pin = f"=={plugin['version']}" if plugin.get("version") else ""
        return f"install the plugin package: pip install '{plugin['distribution']}{pin}'" + (
            f" (it provides module {module})" if module else ""
        )
    if module:
        return f"make module {module} importable and pass --plugin {module} (or {ENV_VAR}={module})"
    return f"install the package that provides it, or pass --plugin MODULE (or {ENV_VAR})"


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (None when it is not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "PluginError",
    "entry_points",
    "env_modules",
    "install_hint",
    "installed_version",
    "load_entry_point",
    "load_module",
    "load_modules",
    "provenance",
    "resolve",
]
