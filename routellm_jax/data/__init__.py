"""Routing data: sources -> canonical records -> labels -> mixtures -> batches."""
