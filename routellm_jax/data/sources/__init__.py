"""Readers that turn each public data source into the canonical records of
:mod:`routellm_jax.data.records` (one module per source family)."""
