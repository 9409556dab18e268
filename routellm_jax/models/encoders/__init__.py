"""Pretrained encoders in Flax: BERT family (bert.py), Llama family (llama.py), fetch + import."""
