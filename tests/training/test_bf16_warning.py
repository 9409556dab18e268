"""train() warns when a bf16 encoder would run on a device that upcasts bf16 matmuls."""

from __future__ import annotations

import jax


def test_bf16_on_a_device_without_native_bf16_warns(monkeypatch, caplog) -> None:
    from routellm_jax.models import bert_classifier
    from routellm_jax.training import train as train_lib

    cfg = bert_classifier.BertClassifierConfig(pretrained=False, dtype="bfloat16")
    device = jax.devices("cpu")[0]
    monkeypatch.setattr(train_lib, "native_bf16_matmul", lambda device: False)
    with caplog.at_level("WARNING", logger=train_lib.__name__):
        assert train_lib.warn_unnative_bf16(cfg, device)
    assert "no native bf16 matmul" in caplog.text
    monkeypatch.setattr(train_lib, "native_bf16_matmul", lambda device: True)
    assert not train_lib.warn_unnative_bf16(cfg, device)
    f32 = bert_classifier.BertClassifierConfig(pretrained=False)
    monkeypatch.setattr(train_lib, "native_bf16_matmul", lambda device: False)
    assert not train_lib.warn_unnative_bf16(f32, device)
