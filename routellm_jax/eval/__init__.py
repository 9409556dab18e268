"""Evaluation harness: benchmarks (MMLU, GSM8K, MT-Bench, any outcome table), the paper's routing
metrics (PGR, APGR, CPT, AUC; random and oracle curves), cost, baselines, plots and the
``routellm-jax eval`` command. Import the submodules directly (nothing heavy is imported here)."""
