"""The paper's ``bert`` router: a BERT-family encoder fine-tuned end to end with a 3-way head.

Each strong-vs-weak battle (oriented by :func:`routellm_jax.data.labels.orient`) is one example
labelled strong wins / weak wins / tie. The head reads the pooled [CLS] token, as
``BertForSequenceClassification`` does (``tanh(dense(h_CLS))`` -> dropout -> linear), which is how
the released RouteLLM checkpoint (loaded with ``AutoModelForSequenceClassification``, 3 labels) is
built; ``pooling="mean"`` uses the masked mean of the token vectors instead (MiniLM was trained
for mean pooling, and its pooler weights were never tuned by sentence-transformers).

Routing score, as the released checkpoint's router computes it::

    P(strong beats weak | prompt) = 1 - P(tie) - P(weak wins) = P(strong wins)

The router is pair-specific: ``strong``/``weak`` at inference are ignored, the pair is fixed by
``strong_models``/``weak_models`` at training time.

Example (a tiny random encoder fed token ids directly; ``pretrained=True``, the default, loads
all-MiniLM-L6-v2, fetched and hash-verified, and its tokenizer makes the ids from text):
    >>> from routellm_jax.models.registry import get_architecture
    >>> arch = get_architecture("bert")
    >>> tiny = dict(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
    ...             intermediate_size=64, max_position_embeddings=16)
    >>> cfg = arch.make_config(pretrained=False, encoder_config=tiny, max_length=16)
    >>> params = arch.init(jax.random.key(0), cfg)
    >>> sorted(params), params["classifier"]["kernel"].shape  # hidden_size x 3 labels
    (['bert', 'classifier'], (32, 3))
    >>> inputs = {"input_ids": np.array([[1, 7, 9, 2]], np.int32),
    ...           "attention_mask": np.ones((1, 4), np.int32)}
    >>> route = jax.jit(win_rate, static_argnums=(2, 3, 4))  # one compiled call, as inference runs
    >>> p_strong = route(params, inputs, 0, 1, cfg)  # = 1 - P(tie) - P(weak wins)
    >>> p_strong.shape, bool(0.0 < float(p_strong[0]) < 1.0)
    ((1,), True)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from routellm_jax.data.labels import LABEL_STRONG, LABEL_TIE, LABEL_WEAK
from routellm_jax.data.records import TrainingData
from routellm_jax.models.encoders.bert import (
    BERT_PARTITION_RULES,
    BertConfig,
    BertModel,
    mean_pool,
)
from routellm_jax.models.encoders.embedder import BatchTokenizer
from routellm_jax.models.encoders.fetch import fetch_encoder
from routellm_jax.models.encoders.hf_import import (
    CheckpointError,
    assign_strict,
    bert_key_converter,
    load_bert,
    read_safetensors,
    safetensors_files,
)
from routellm_jax.models.featurizers import pair_battles
from routellm_jax.models.registry import Architecture

Params = Any
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_POOLINGS = ("cls", "mean")
_PAD_MULTIPLE = 16  # inference inputs are padded to a multiple of this (few distinct shapes)


@dataclasses.dataclass(frozen=True)
class BertClassifierConfig:
    """Configuration of the ``bert`` router.

    ``encoder`` is a fetchable encoder name (see ``encoders/fetch.py``) or a local HF folder;
    its tokenizer is always used. ``encoder_config`` (BertConfig fields) replaces the encoder's
    shape when ``pretrained=False`` (tiny random models for tests).

    Example:
        >>> BertClassifierConfig(pretrained=False).num_labels
        3
    """

    encoder: str = "all-MiniLM-L6-v2"
    pretrained: bool = True
    max_length: int = 256  # tokens per prompt ([CLS] and [SEP] included); MiniLM was tuned at 256
    strong_models: tuple[str, ...] = ("gpt-4-1106-preview",)
    weak_models: tuple[str, ...] = ("mixtral-8x7b-instruct-v0.1",)
    models: tuple[str, ...] = ()  # the model table of the card; scores ignore it (pair-specific)
    # Also train on per-model correctness: each prompt graded for a strong and a weak model
    # becomes one strong-vs-weak battle (both right or both wrong: a tie).
    use_outcomes: bool = False
    # Loss weight of the mix's battles (judge labels) against the battles formed from per-model
    # outcomes, as irt's battle_weight: the pair's judge battles (gpt-4-1106 wins 77% of
    # AlpacaEval's, judged against itself) otherwise set the level of every chat-like prompt.
    battle_weight: float = 1.0
    dropout: float = 0.1  # encoder (hidden + attention) and head dropout while training
    num_labels: int = 3
    pooling: str = "cls"  # "cls": BertForSequenceClassification's pooler; "mean": masked mean
    dtype: str = "float32"  # compute dtype of the encoder (params stay float32)
    encoder_config: tuple[tuple[str, Any], ...] | None = None  # also accepts a dict

    def __post_init__(self) -> None:
        if self.encoder_config is not None:
            # Stored as sorted (key, value) pairs so the frozen config stays hashable.
            items = dict(self.encoder_config).items()
            object.__setattr__(self, "encoder_config", tuple(sorted(items)))
        if self.num_labels != 3:
            raise ValueError(
                "BertClassifierConfig.num_labels must be 3 (strong wins / weak wins / tie)"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"BertClassifierConfig.dtype must be one of {sorted(_DTYPES)}")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"BertClassifierConfig.pooling must be one of {_POOLINGS}")
        if not self.battle_weight >= 0.0:
            raise ValueError(
                f"BertClassifierConfig.battle_weight must be >= 0, got {self.battle_weight}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BertClassifierConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.pretrained and self.encoder_config is not None:
            raise ValueError("encoder_config is only for pretrained=False (random init)")
        both = set(self.strong_models) & set(self.weak_models)
        if both:
            raise ValueError(f"models in both strong_models and weak_models: {sorted(both)}")


def encoder_folder(config: BertClassifierConfig) -> Path:
    """The encoder's local folder: ``config.encoder`` if it is a folder, else fetched (verified)."""
    path = Path(config.encoder)
    if path.is_dir():
        return path

    return fetch_encoder(config.encoder)


def bert_config(config: BertClassifierConfig) -> BertConfig:
    """The encoder's shape, with ``config.dropout`` as its dropout rates.

    Example:
        >>> bert_config(BertClassifierConfig(pretrained=False, encoder_config=dict(
        ...     vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...     intermediate_size=16))).hidden_dropout_prob
        0.1
    """
    if config.encoder_config is not None:
        base = BertConfig(**dict(config.encoder_config))
    else:
        base = BertConfig.from_json(encoder_folder(config) / "config.json")
    return dataclasses.replace(
        base, hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout
    )


class BertClassifier(nn.Module):
    """Encoder + dropout + linear head: ``(input_ids, attention_mask) -> logits [b, 3]`` float32."""

    config: BertConfig
    num_labels: int = 3
    dropout: float = 0.1
    pooling: str = "cls"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, input_ids, attention_mask, deterministic: bool = True):
        encoder = BertModel(
            self.config, dtype=self.dtype, add_pooler=self.pooling == "cls", name="bert"
        )
        hidden, pooled = encoder(input_ids, attention_mask, deterministic=deterministic)
        x = pooled if self.pooling == "cls" else mean_pool(hidden, attention_mask)
        x = nn.Dropout(self.dropout)(x.astype(jnp.float32), deterministic=deterministic)
        head = nn.Dense(
            self.num_labels, kernel_init=nn.initializers.normal(0.02), name="classifier"
        )
        return head(x)  # [b, num_labels] float32


def _module(config: BertClassifierConfig, enc: BertConfig) -> BertClassifier:
    return BertClassifier(
        enc,
        num_labels=config.num_labels,
        dropout=config.dropout,
        pooling=config.pooling,
        dtype=_DTYPES[config.dtype],
    )


def init(rng: jax.Array, config: BertClassifierConfig) -> Params:
    """Fresh parameters ``{"bert": ..., "classifier": ...}``: the pretrained encoder (fetched and
    hash-verified) when ``config.pretrained``, random otherwise; the head is always random.

    Example: see this module's docstring (``arch.init`` is this function).
    """
    module = _module(config, _encoder_shape(config))
    ids = jnp.zeros((1, 8), jnp.int32)

    def init_fn(r: jax.Array) -> Params:
        return module.init(r, ids, jnp.ones_like(ids))["params"]

    if not config.pretrained:
        return jax.tree_util.tree_map(np.asarray, jax.jit(init_fn)(rng))

    # Only the head is random: build it directly instead of initialising 22M encoder weights.
    shapes = jax.eval_shape(init_fn, rng)
    kernel = shapes["classifier"]["kernel"]
    _, encoder = load_bert(encoder_folder(config), add_pooler=config.pooling == "cls")
    params = {
        "bert": encoder,
        "classifier": {
            "kernel": np.asarray(0.02 * jax.random.normal(rng, kernel.shape, kernel.dtype)),
            "bias": np.zeros(shapes["classifier"]["bias"].shape, np.float32),
        },
    }
    got = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), params)
    want = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), shapes)
    if got != want:  # the checkpoint's encoder differs from the model config
        raise ValueError(f"encoder {config.encoder!r}: parameter tree does not match the model")
    return params


# The released RouteLLM BERT checkpoint's label order: 0 = strong wins, 1 = tie, 2 = weak wins
# (its router sums the softmax of labels 1 and 2 as "tie or weak wins").
RELEASED_LABEL_ORDER = (LABEL_STRONG, LABEL_TIE, LABEL_WEAK)


def load_hf_classifier(
    folder: str | Path,
    config: BertClassifierConfig,
    *,
    label_order: tuple[int, int, int] = RELEASED_LABEL_ORDER,
) -> Params:
    """Parameters from a Hugging Face ``BertForSequenceClassification`` folder (safetensors),
    strictly (every tensor used, shapes checked). ``label_order[i]`` is our label for the
    checkpoint's output ``i``; the head's columns are permuted into our order.
    """

    if sorted(label_order) != [0, 1, 2]:
        raise ValueError(f"label_order must be a permutation of (0, 1, 2), got {label_order}")
    perm = np.argsort(np.asarray(label_order))  # our label j <- checkpoint output perm[j]

    def convert(key: str, value: np.ndarray):
        if key.startswith("classifier."):
            if key == "classifier.weight":
                return "classifier/kernel", np.ascontiguousarray(value[perm].T)
            if key == "classifier.bias":
                return "classifier/bias", value[perm]
            raise CheckpointError("unknown classifier tensor")
        if not key.startswith("bert."):
            raise CheckpointError("expected a 'bert.' or 'classifier.' tensor")
        out = bert_key_converter(key, value)
        return None if out is None else ("bert/" + out[0], out[1])

    module = _module(config, _encoder_shape(config))
    ids = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda r: module.init(r, ids, ids)["params"], jax.random.key(0))
    tensors = read_safetensors(safetensors_files(folder))
    return assign_strict(shapes, tensors, convert)


def make_featurizer(config: BertClassifierConfig) -> BatchTokenizer:
    """The encoder's fast tokenizer, truncating at ``config.max_length`` and padding with the
    encoder's pad id (BERT's 0, MPNet's 1)."""
    pad_id = bert_config(config).pad_token_id
    return BatchTokenizer.from_folder(encoder_folder(config), config.max_length, pad_id)


def _tokenize_unique(prompts: Sequence[str], tok: BatchTokenizer) -> list[np.ndarray]:
    """Tokenize each distinct prompt once (battle tables repeat prompts many times)."""
    distinct = list(dict.fromkeys(prompts))
    ids = dict(zip(distinct, tok.encode_ids(distinct)))
    return [ids[p] for p in prompts]


def examples_from_records(
    data: TrainingData, featurizer: BatchTokenizer, config: BertClassifierConfig
) -> dict[str, np.ndarray]:
    """Strong-vs-weak battles -> ``input_ids``/``attention_mask [n, max_length]`` int32,
    ``label [n]`` int32 (LABEL_STRONG / LABEL_WEAK / LABEL_TIE), ``weight [n]`` float32.
    Per-model outcomes count too when ``config.use_outcomes`` (only the strong x weak pairs are
    formed, see ``featurizers.pair_battles``); the mix's own battles weigh ``config.battle_weight``
    times their weight.
    """

    if config.battle_weight != 1.0:
        battles = data.comparisons
        data = TrainingData(
            dataclasses.replace(battles, weight=battles.weight * np.float32(config.battle_weight)),
            data.outcomes,
        )
    table, labels = pair_battles(
        data, config.use_outcomes, config.strong_models, config.weak_models
    )
    rows = _tokenize_unique(table.prompt.tolist(), featurizer)
    ids, mask = featurizer.pad(rows, config.max_length)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "label": labels.astype(np.int32),
        "weight": np.asarray(table.weight, dtype=np.float32),
    }


def prompt_inputs(
    prompts: Sequence[str], featurizer: BatchTokenizer, config: BertClassifierConfig
) -> dict[str, np.ndarray]:
    """``input_ids``/``attention_mask [n, L]``: L = the longest prompt rounded up to a multiple of
    16, at most ``max_length`` (inference cuts length-sorted chunks of them to its length buckets).
    """
    rows = _tokenize_unique(list(prompts), featurizer)
    longest = max((len(r) for r in rows), default=1)
    length = min(-(-longest // _PAD_MULTIPLE) * _PAD_MULTIPLE, config.max_length)
    ids, mask = featurizer.pad(rows, length)
    return {"input_ids": ids, "attention_mask": mask}


def logits(
    params: Params,
    inputs: dict[str, Any],
    config: BertClassifierConfig,
    *,
    rng: jax.Array | None = None,
) -> jax.Array:
    """``[batch, 3]`` float32 logits; dropout is on when an ``rng`` is given (training)."""
    module = _module(config, _encoder_shape(config))
    ids = jnp.asarray(inputs["input_ids"], jnp.int32)
    mask = jnp.asarray(inputs["attention_mask"], jnp.int32)
    if rng is None:
        return module.apply({"params": params}, ids, mask, deterministic=True)
    return module.apply({"params": params}, ids, mask, deterministic=False, rngs={"dropout": rng})


@functools.lru_cache(maxsize=16)
def _encoder_shape_from_folder(encoder: str, dropout: float) -> BertConfig:
    # config.json is read once per (encoder, dropout): logits() runs at every trace.
    return bert_config(BertClassifierConfig(encoder=encoder, dropout=dropout))


def _encoder_shape(config: BertClassifierConfig) -> BertConfig:
    if config.encoder_config is not None:
        return bert_config(config)
    return _encoder_shape_from_folder(config.encoder, config.dropout)


def label_probs(params: Params, inputs: dict[str, Any], config: BertClassifierConfig) -> jax.Array:
    """``[batch, 3]`` softmax, columns indexed by LABEL_STRONG / LABEL_WEAK / LABEL_TIE."""
    return jax.nn.softmax(logits(params, inputs, config), axis=-1)


def win_rate(
    params: Params, inputs: dict[str, Any], strong: Any, weak: Any, config: BertClassifierConfig
) -> jax.Array:
    """P(strong beats weak) ``[batch]`` = 1 - P(tie) - P(weak wins), as the released checkpoint;
    ``strong``/``weak`` are ignored (the pair is fixed by training).
    """
    del strong, weak
    probs = label_probs(params, inputs, config)
    return 1.0 - probs[:, LABEL_TIE] - probs[:, LABEL_WEAK]


def loss(
    params: Params, batch: dict[str, Any], rng: jax.Array, config: BertClassifierConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted cross-entropy over the 3 labels, dropout on (driven by ``rng``)."""
    out = logits(params, batch, config, rng=rng)  # [b, 3]
    labels = jnp.asarray(batch["label"], jnp.int32)
    weight = jnp.asarray(batch.get("weight", jnp.ones(labels.shape)), jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(out, labels)
    total = jnp.maximum(weight.sum(), 1e-9)
    value = jnp.sum(weight * ce) / total
    correct = (jnp.argmax(out, axis=-1) == labels).astype(jnp.float32)
    p_strong = jax.nn.softmax(out, axis=-1)[:, LABEL_STRONG]
    return value, {
        "accuracy": jnp.sum(weight * correct) / total,
        "p_strong": jnp.sum(weight * p_strong) / total,
    }


ARCHITECTURE = Architecture(
    name="bert",
    config_cls=BertClassifierConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    partition_rules=BERT_PARTITION_RULES,
    description="BERT-family encoder (MiniLM) fine-tuned end to end, 3-way head on [CLS]: "
    "P(strong) = 1 - P(tie) - P(weak wins)",
    sequence_keys=("input_ids", "attention_mask"),
    mask_key="attention_mask",
    precision_key="dtype",  # load(precision=...) is the encoder's compute dtype
)
