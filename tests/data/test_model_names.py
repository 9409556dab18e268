"""The canonical model table: aliases, normalisation, contexts, user extension, unknown names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routellm_jax.data.model_names import (
    ENV_USER_TABLE,
    ModelTable,
    UnknownModelError,
    canonical,
    default_table,
    normalize_name,
)


@pytest.fixture(scope="module")
def table() -> ModelTable:
    return ModelTable.builtin()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt4_1106_preview", "gpt-4-1106-preview"),
        ("gpt-4-1106-preview", "gpt-4-1106-preview"),
        ("GPT-4-1106-Preview", "gpt-4-1106-preview"),
        ("Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b-instruct-v0.1"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b-instruct-v0.1"),
        ("mistralai/mixtral-8x7b-chat", "mixtral-8x7b-instruct-v0.1"),
        ("Llama-2-70b-chat", "llama-2-70b-chat"),
        ("llama-2-70b-chat-hf", "llama-2-70b-chat"),
        ("meta/llama-2-70b-chat", "llama-2-70b-chat"),
        ("HuggingFaceH4/zephyr-7b-beta", "zephyr-7b-beta"),
        ("openchat_3.5", "openchat-3.5"),
        ("text_davinci_003", "text-davinci-003"),
        ("zero-one-ai/Yi-34B-Chat", "yi-34b-chat"),
    ],
)
def test_aliases_resolve(table: ModelTable, name: str, expected: str) -> None:
    assert table.canonical(name) == expected


def test_distinct_models_stay_distinct(table: ModelTable) -> None:
    # Same family, different weights / snapshots / prompt variants: never merged.
    names = [
        "mixtral-8x7b-instruct-v0.1",
        "Mixtral-8x7B-Instruct-v0.1_concise",
        "mistralai/Mistral-7B-v0.1",
        "Mistral-7B-Instruct-v0.1",
        "Mistral-7B-Instruct-v0.2",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-1106",
        "gpt4",
        "gpt-4-0314",
        "claude-instant-1",
        "claude-instant-1.2",
    ]
    resolved = [table.canonical(n) for n in names]
    assert len(set(resolved)) == len(names)


def test_context_alias_only_in_its_context(table: ModelTable) -> None:
    assert table.canonical("gpt-4-turbo", context="arena-bench-v1-file") == "gpt-4-1106-preview"
    with pytest.raises(UnknownModelError):
        table.canonical("gpt-4-turbo")  # globally a later, different model


def test_unknown_name_error_names_name_and_origin(table: ModelTable) -> None:
    with pytest.raises(UnknownModelError) as info:
        table.canonical("gpt-4-1106-previewx", where="battles.csv, row 7, field 'model_a'")
    msg = str(info.value)
    assert "'gpt-4-1106-previewx'" in msg and "battles.csv, row 7" in msg
    assert "gpt-4-1106-preview" in info.value.suggestions  # suggested, never used
    assert isinstance(info.value, KeyError)


def test_canonical_array_names_file_and_first_row(table: ModelTable) -> None:
    out = table.canonical_array(["gpt4_1106_preview", "claude-v2", "gpt4_1106_preview"])
    assert out.tolist() == ["gpt-4-1106-preview", "claude-2.0", "gpt-4-1106-preview"]
    with pytest.raises(UnknownModelError, match=r"x\.csv, row 2, field 'model_b'"):
        table.canonical_array(
            np.array(["claude-2.1", "claude-2.1", "nope-model", "nope-model"]),
            path="x.csv",
            field_name="model_b",
        )


def test_extend_and_user_file(tmp_path, table: ModelTable, monkeypatch) -> None:
    ext = table.extend({"my-router-model": ["My_Model", "org/my-model-v1"]})
    assert ext.canonical("my model") == "my-router-model"
    assert ext.canonical("org/my-model-v1") == "my-router-model"
    assert "my-router-model" not in table  # the original is unchanged
    # An extension can add aliases to an existing model by any of its names.
    ext2 = table.extend({"gpt4_1106_preview": ["gpt-4-turbo-preview"]})
    assert ext2.canonical("gpt-4-turbo-preview") == "gpt-4-1106-preview"
    # A conflicting alias is an error naming both models.
    with pytest.raises(ValueError, match="claimed by both"):
        table.extend({"some-new-model": ["claude-v2"]})

    user = tmp_path / "models.json"
    user.write_text(
        json.dumps({"models": {"local-llm": {"aliases": ["LocalLLM"], "price_per_m_input": 0.1}}})
    )
    loaded = ModelTable.load(user)
    assert loaded.canonical("localllm") == "local-llm"
    assert loaded.canonical("gpt4_1106_preview") == "gpt-4-1106-preview"  # built-in kept
    monkeypatch.setenv(ENV_USER_TABLE, str(user))
    assert default_table().canonical("LocalLLM") == "local-llm"
    assert canonical("LocalLLM") == "local-llm"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"aliases": "not-a-list"}}}))
    with pytest.raises(ValueError, match=r"bad\.json: models\['x'\]"):
        ModelTable.load(bad)


def test_prices_and_round_trip(table: ModelTable) -> None:
    assert table.price("gpt4_1106_preview") == (10.0, 30.0)
    assert table.price("mistralai/Mixtral-8x7B-Instruct-v0.1") == (0.24, 0.24)
    again = ModelTable.from_dict(table.to_dict())
    assert again.names() == table.names()
    assert again.canonical("meta/llama-2-70b-chat") == "llama-2-70b-chat"


def test_normalize_name() -> None:
    assert normalize_name("  Foo_Bar  baz ") == "foo-bar-baz"
