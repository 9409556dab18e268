"""The model zoo's reading side, below the inference API: what an entry is and how to get one.

``card.py`` (the model card), ``manifest.py`` (the index), ``transport.py`` (downloads),
``cache.py`` (pull, unpack, verify), ``entry.py`` (resolve + verify + restore one entry),
``errors.py``; ``hub.py`` gathers the public names. Exporting entries is
:mod:`routellm_jax.publish`, above the API.
"""
