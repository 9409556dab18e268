"""Exporting and publishing zoo entries: the layer above the inference API.

Turning trained parameters into an entry needs the API (a :class:`~routellm_jax.api.Router` to
calibrate on, and to check that the written entry loads back to the same win rates), so it sits
above it, while the zoo's reading side (:mod:`routellm_jax.zoo`: manifest, download, cache,
cards, entry reading) sits below. One export is four steps, each a function of
:mod:`routellm_jax.publish.export`, driven by an :class:`~routellm_jax.publish.export.ExportSpec`:

1. ``calibrate``: win rates over a stated reference prompt set -> the card's calibration table;
2. ``write_entry``: the Orbax checkpoint and ``card.json`` (every checkpoint file hashed);
3. ``verify_round_trip``: the written entry is read back as ``load()`` reads it and must give the
   same win rates, or nothing is written;
4. ``pack_entry`` (:mod:`routellm_jax.publish.pack`): a deterministic ``.tar``, then
   ``update_manifest`` lists it.

:mod:`routellm_jax.publish.provenance` fills the card's encoder and commit fields;
:mod:`routellm_jax.models.embedding_store` keeps frozen-encoder embeddings on disk (shared with
training). :mod:`routellm_jax.publish.build` rebuilds a zoo entry from its committed recipe. Evaluations come from :mod:`routellm_jax.eval`, reference prompts from
:mod:`routellm_jax.data.judge_split`.
"""
