"""The repository root's conftest: pytest imports it in its default ("prepend") import mode, which
puts this folder on ``sys.path``, so tests import ``experiments`` and ``tools`` as packages, as
``python -m experiments.<name>`` / ``python -m tools.<name>`` run from here do. Shared fixtures
live in ``tests/conftest.py``."""
