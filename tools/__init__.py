"""Benchmark and maintenance tools. Run them from the repository root as modules
(``python -m tools.<name>``): that is how a tool imports another tool or the ``experiments``
package without touching ``sys.path``. Tools that import only ``routellm_jax`` also run as scripts.
"""
