"""The model zoo: model cards (card.py), export (export.py), manifest + download + verify (hub.py)."""
