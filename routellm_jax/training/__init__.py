"""Training framework: configs, mesh + partition rules, the compiled train step, checkpoints."""
