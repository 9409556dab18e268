"""The paper's ``causal_llm`` router: a Llama-family LM that rates a prompt with label tokens.

Format (reference RouteLLM ``routellm/routers/causal_llm``: ``system_ft_v5.txt``,
``classifier_ft_v5.txt``, Apache-2.0): a system message asks to predict, on a 1-5 scale, the score
an expert would give the (weak) assistant's answer; the user turn is ``[Question]\\n{question}\\n\\n
Prediction:``; the assistant's first token is one of five label tokens ``[[1]]``..``[[5]]`` added
to the vocabulary (new embedding rows, initialised to the mean embedding). The chat template is
the base model's own (SmolLM2's ChatML template from its GGUF metadata); a model without one gets
``system + "\\n\\n" + user + "\\n"``.

* ``win_rate`` = ``1 - sum_{s >= score_threshold} softmax(label logits)[s]`` with
  ``score_threshold = 4`` as in the released router (``CausalLLMRouter(score_threshold=4)``):
  P(strong beats weak) is the probability that the weak model's answer would NOT score 4-5.
* Labels from battles (``data.labels.orient``): the reference does not publish its training code,
  so battles map onto its score scale by the judge template's own wording (4-5 = "very close to
  the reference or even better", 1-2 = "much lower quality"): strong wins -> ``[[1]]``, tie ->
  ``[[4]]``, weak wins -> ``[[5]]`` (``label_scores``). With ``score_threshold = 4`` this makes
  the router's win rate estimate P(strong wins), like ``bert`` (1 - P(tie) - P(weak)).
* Loss: cross-entropy over the whole (grown) vocabulary at the answer position only, weighted by
  the example ``weight`` (what fine-tuning the LM on the one-token answer does).
* The answer position is the last real token: prompts are laid out ``[template head][question]
  [template tail]`` and right-padded; an over-long question is cut (its first tokens kept) so
  the template always survives.

SmolLM2-135M-Instruct (``base_model="smollm2-135m-instruct"``, Q4_1 GGUF dequantized) stands in
for the paper's Llama-3-8B; ``"tiny-random"`` is a 2-layer model with a byte-level tokenizer for
tests; a folder with ``config.json`` (+ safetensors, tokenizer files) or a ``.gguf`` path works too.

Example (the tiny random model; its forward pass is exercised in tests/models/test_causal_llm.py):
    >>> from routellm_jax.models.registry import get_architecture
    >>> arch = get_architecture("causal_llm")
    >>> cfg = arch.make_config(base_model="tiny-random", pretrained=False, system_message="Rate it.",
    ...                        max_length=64)
    >>> feat = arch.make_featurizer(cfg)
    >>> prompt_inputs(["What is 2+2?", "Prove Fermat's last theorem."], feat, cfg)["input_ids"].shape
    (2, 64)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers import models as tokenizer_models

from routellm_jax.data.labels import LABEL_STRONG, LABEL_TIE, LABEL_WEAK
from routellm_jax.data.records import TrainingData
from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders import gguf_import, llama, smollm
from routellm_jax.models.featurizers import pair_battles
from routellm_jax.models.registry import Architecture
from routellm_jax.paths import cache_dir

Params = Any

SMOLLM2 = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
LABEL_TOKENS = ("[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]")
NUM_SCORES = len(LABEL_TOKENS)

# RouteLLM routellm/routers/causal_llm/system_ft_v5.txt (Apache-2.0), verbatim.
SYSTEM_MESSAGE = (
    "[Instruction]\n"
    "Based on the question provided below, predict the score an expert evaluator would give to "
    "an AI assistant's response, considering its helpfulness, relevance, adherence to facts, "
    "depth, creativity, and detail. Your prediction should infer the level of proficiency needed "
    "to address the question effectively. Use a scale from 1 to 5, where a higher score "
    "indicates a higher anticipated quality of response. Provide your prediction as: "
    '"[[predicted rating]]".\n\n'
    "Score criteria:\n"
    "- **4-5**: The AI assistant can produce a very strong answer, showing deep understanding, "
    "creativity, detailed insight, and high relevance.\n"
    "- **3**: The AI assistant can provide an adequate answer with moderate detail, relevance, "
    "and factual accuracy.\n"
    "- **1-2**: The AI assistant will struggle to produce a strong answer due to the question's "
    "difficulty, vagueness, or the assistant's limitations.\n"
)
# RouteLLM routellm/routers/causal_llm/classifier_ft_v5.txt, verbatim.
CLASSIFIER_MESSAGE = "[Question]\n{question}\n\nPrediction:\n"

# The tiny test model's shape (vocab = the byte tokenizer's 256 bytes + 2 specials).
_TINY_SHAPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class CausalLLMConfig:
    """Configuration of the ``causal_llm`` router.

    Example:
        >>> CausalLLMConfig(base_model="tiny-random", pretrained=False).score_threshold
        4
    """

    base_model: str = SMOLLM2  # SMOLLM2 | TINY_RANDOM | HF folder | .gguf file
    pretrained: bool = True  # load the base weights (False: random init of the same shape)
    max_length: int = 512  # tokens per example, template included
    strong_models: tuple[str, ...] = ("gpt-4-1106-preview",)
    weak_models: tuple[str, ...] = ("mixtral-8x7b-instruct-v0.1",)
    models: tuple[str, ...] = ()  # the model table of the card; scores ignore it (pair-specific)
    dtype: str = "float32"  # compute dtype: float32 | bfloat16 | float16 (params stay float32)
    remat: bool = False  # recompute blocks in the backward pass (less memory when fine-tuning)
    # Encode the instruction template (identical at the start of every row: ~200 tokens for
    # SmolLM2's chat template) once per batch and let each row attend to its keys/values,
    # instead of re-encoding it in every row. Same result up to float rounding.
    share_prefix: bool = True
    score_threshold: int = 4  # P(strong) = 1 - sum P(score >= threshold)
    # Score (1-5) taught for each battle label, indexed by LABEL_STRONG, LABEL_WEAK, LABEL_TIE.
    label_scores: tuple[int, int, int] = (1, 5, 4)
    use_outcomes: bool = False  # also train on per-model outcomes turned into battles (+gold)
    system_message: str = SYSTEM_MESSAGE
    classifier_message: str = CLASSIFIER_MESSAGE

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"CausalLLMConfig.dtype must be one of {sorted(_DTYPES)}")
        if not 1 <= self.score_threshold <= NUM_SCORES:
            raise ValueError(f"CausalLLMConfig.score_threshold must be in 1..{NUM_SCORES}")
        if len(self.label_scores) != 3 or not all(1 <= s <= NUM_SCORES for s in self.label_scores):
            raise ValueError("CausalLLMConfig.label_scores must be three scores in 1..5")
        if "{question}" not in self.classifier_message:
            raise ValueError("CausalLLMConfig.classifier_message must contain '{question}'")
        if self.base_model == TINY_RANDOM and self.pretrained:
            raise ValueError("base_model='tiny-random' has no pretrained weights: pretrained=False")
        if set(self.strong_models) & set(self.weak_models):
            raise ValueError(
                f"models in both strong_models and weak_models: "
                f"{sorted(set(self.strong_models) & set(self.weak_models))}"
            )


# ----------------------------------------------------------------------------- base model


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ``<|pad|>``, ``<|endoftext|>``), built offline.

    Example:
        >>> len(byte_tokenizer())
        258
    """
    from transformers import PreTrainedTokenizerFast  # local: transformers loads slowly

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(tokenizer_models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|pad|>", "<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|endoftext|>"
    )


def _is_gguf(base: str) -> bool:
    return base.endswith(".gguf")


@functools.lru_cache(maxsize=8)
def base_llama_config(base_model: str) -> llama.LlamaConfig:
    """The base decoder's config (before the label tokens are added).

    Example:
        >>> base_llama_config("tiny-random").vocab_size
        258
    """
    if base_model == TINY_RANDOM:
        return llama.LlamaConfig(vocab_size=len(byte_tokenizer()), **_TINY_SHAPE)
    if base_model == SMOLLM2 or _is_gguf(base_model):
        path = smollm.fetch_smollm2() if base_model == SMOLLM2 else Path(base_model)
        meta, tensors = gguf_import.read_gguf(path)
        vocab_rows = (
            tensors["token_embd.weight"].shape[0] if "token_embd.weight" in tensors else None
        )
        return gguf_import.llama_config_from_gguf(
            meta, set(tensors), source=str(path), vocab_rows=vocab_rows
        )
    if Path(base_model).is_dir():
        return llama.LlamaConfig.from_hf_config(base_model)
    raise ValueError(
        f"causal_llm: base_model={base_model!r} is not {SMOLLM2!r}, {TINY_RANDOM!r}, a folder "
        "with config.json, or a .gguf file"
    )


def model_config(config: CausalLLMConfig) -> llama.LlamaConfig:
    """The decoder's config with the five label tokens appended to the vocabulary.

    Example:
        >>> model_config(CausalLLMConfig(base_model="tiny-random", pretrained=False)).vocab_size
        263
    """
    base = base_llama_config(config.base_model)
    return base.replace(vocab_size=base.vocab_size + NUM_SCORES)


def label_token_ids(config: CausalLLMConfig) -> np.ndarray:
    """Vocabulary ids of ``[[1]]``..``[[5]]``: the rows appended after the base vocabulary."""
    return np.arange(NUM_SCORES, dtype=np.int32) + base_llama_config(config.base_model).vocab_size


def _base_tokenizer(base_model: str) -> Any:
    if base_model == TINY_RANDOM:
        return byte_tokenizer()
    if base_model == SMOLLM2:
        return smollm.load_smollm2_tokenizer()
    if _is_gguf(base_model):
        digest = sha256_file(base_model)[:16]
        return gguf_import.load_gguf_tokenizer(
            base_model, cache=cache_dir() / "encoders" / f"gguf-tokenizer-{digest}"
        )
    from transformers import AutoTokenizer  # local: transformers loads slowly

    return AutoTokenizer.from_pretrained(base_model)


def _base_params(base_model: str) -> tuple[llama.LlamaConfig, Params]:
    if base_model == SMOLLM2 or _is_gguf(base_model):
        path = smollm.fetch_smollm2() if base_model == SMOLLM2 else base_model
        return gguf_import.load_gguf(path)
    return llama.load_hf_pretrained(base_model)


def init(rng: jax.Array, config: CausalLLMConfig) -> Params:
    """``{"llama": params}``: pretrained (or random) base weights + mean-initialised label rows.

    Example:
        >>> params = init(jax.random.key(0), CausalLLMConfig(base_model="tiny-random",
        ...                                                   pretrained=False))
        >>> params["llama"]["embed_tokens"]["embedding"].shape
        (263, 64)
    """
    base = base_llama_config(config.base_model)
    if config.pretrained:
        loaded_cfg, params = _base_params(config.base_model)
        if loaded_cfg != base:
            raise ValueError(f"{config.base_model}: weights' config {loaded_cfg} != {base}")
    else:
        params = llama.init_params(rng, base)
    params, _ = llama.resize_vocab(params, base, base.vocab_size + NUM_SCORES)
    return {"llama": params}


# ----------------------------------------------------------------------------- featurizer


@dataclasses.dataclass
class CausalLLMFeaturizer:
    """Tokenizes prompts into the router's instruction format (host side, built once).

    ``prefix_ids`` / ``suffix_ids`` are the template before / after the question.
    """

    tokenizer: Any
    prefix_ids: list[int]
    suffix_ids: list[int]
    max_length: int
    pad_id: int

    @property
    def question_budget(self) -> int:
        return self.max_length - len(self.prefix_ids) - len(self.suffix_ids)

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each formatted prompt (no padding), at most ``max_length`` long."""
        prompts = [str(p).strip() for p in prompts]
        if not prompts:
            return []
        questions = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        budget = self.question_budget
        return [self.prefix_ids + list(q[:budget]) + self.suffix_ids for q in questions]

    def pad(self, rows: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad to ``[n, length]``: ``(input_ids int32, attention_mask int32)``."""
        ids = np.full((len(rows), length), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(rows), length), dtype=np.int32)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask


def make_featurizer(config: CausalLLMConfig) -> CausalLLMFeaturizer:
    """Build the tokenizer and the split template for ``config``.

    Example:
        >>> feat = make_featurizer(CausalLLMConfig(base_model="tiny-random", pretrained=False,
        ...                                        system_message="Rate it.", max_length=64))
        >>> feat.encode(["hi"])[0][-3:] == feat.suffix_ids[-3:]
        True
    """
    tok = _base_tokenizer(config.base_model)
    vocab = base_llama_config(config.base_model).vocab_size
    if len(tok) == vocab:
        # Same ids as the model's appended rows, so decoding shows the label tokens.
        tok.add_tokens(list(LABEL_TOKENS), special_tokens=True)
    marker = "\ue000QUESTION\ue000"  # a private-use character never produced by real prompts
    user = config.classifier_message.format(question=marker).strip()
    system = config.system_message
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            tokenize=False,
            add_generation_prompt=True,
        )
    else:
        text = f"{system}\n\n{user}\n"
    if text.count(marker) != 1:
        raise ValueError(f"{config.base_model}: the chat template lost or repeated the question")
    head, tail = text.split(marker)
    prefix_ids = list(tok(head)["input_ids"])  # the tokenizer's own BOS, if any
    suffix_ids = list(tok(tail, add_special_tokens=False)["input_ids"])
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    feat = CausalLLMFeaturizer(tok, prefix_ids, suffix_ids, config.max_length, int(pad_id or 0))
    if feat.question_budget < 8:
        raise ValueError(
            f"causal_llm: max_length={config.max_length} leaves {feat.question_budget} tokens "
            f"for the question (template: {len(prefix_ids)} + {len(suffix_ids)} tokens)"
        )
    return feat


def examples_from_records(
    data: TrainingData, featurizer: CausalLLMFeaturizer, config: CausalLLMConfig
) -> dict[str, np.ndarray]:
    """Strong-vs-weak battles -> ``input_ids``/``attention_mask [n, max_length]``, ``label [n]``
    (score class 0..4, i.e. score - 1), ``weight [n]``. Per-model outcomes count too when
    ``config.use_outcomes`` (turned into battles by ``featurizers.pair_battles``).

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable
        >>> cfg = CausalLLMConfig(base_model="tiny-random", pretrained=False, system_message="Rate it.",
        ...                       max_length=64)
        >>> table = ComparisonTable.from_records(
        ...     [Comparison("What is 2+2?", "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "a")])
        >>> ex = examples_from_records(TrainingData.of(comparisons=table), make_featurizer(cfg), cfg)
        >>> ex["input_ids"].shape, ex["label"].tolist(), ex["weight"].tolist()
        ((1, 64), [0], [1.0])
    """

    table, labels = pair_battles(
        data, config.use_outcomes, config.strong_models, config.weak_models
    )
    scores = np.zeros(len(labels), dtype=np.int32)
    for label in (LABEL_STRONG, LABEL_WEAK, LABEL_TIE):
        scores[labels == label] = config.label_scores[label] - 1
    ids, mask = featurizer.pad(featurizer.encode(table.prompt.tolist()), config.max_length)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "label": scores,
        "weight": np.asarray(table.weight, dtype=np.float32),
    }


def prompt_inputs(
    prompts: Sequence[str], featurizer: CausalLLMFeaturizer, config: CausalLLMConfig
) -> dict[str, np.ndarray]:
    """``input_ids``/``attention_mask [n, L]``, L = the longest row rounded up to a multiple of 32
    (at most ``max_length``); inference cuts length-sorted chunks of them to its length buckets.

    Example:
        >>> cfg = CausalLLMConfig(base_model="tiny-random", pretrained=False, system_message="Rate it.",
        ...                       max_length=128)
        >>> prompt_inputs(["What is 2+2?"], make_featurizer(cfg), cfg)["input_ids"].shape
        (1, 64)
    """
    rows = featurizer.encode(prompts)
    longest = max((len(r) for r in rows), default=1)
    length = min(-(-longest // 32) * 32, config.max_length)
    ids, mask = featurizer.pad(rows, length)
    return {"input_ids": ids, "attention_mask": mask}


# ----------------------------------------------------------------------------- model functions


@functools.lru_cache(maxsize=16)
def template_prefix_length(config: CausalLLMConfig) -> int:
    """Tokens of the template head that start every row (0 when ``share_prefix`` is off or the
    template has no tail, i.e. the answer position could fall inside the head).

    Example:
        >>> template_prefix_length(CausalLLMConfig(base_model="tiny-random", pretrained=False,
        ...                                        share_prefix=False))
        0
    """
    if not config.share_prefix:
        return 0
    feat = make_featurizer(config)
    return len(feat.prefix_ids) if feat.suffix_ids else 0


def _answer_logits(
    params: Params, batch: dict[str, Any], config: CausalLLMConfig, token_ids: Any = None
) -> jax.Array:
    """LM logits (float32) at the answer position: ``[batch, vocab]`` or ``[batch, len(ids)]``.

    With ``share_prefix`` the first :func:`template_prefix_length` tokens (the template head,
    the same in every row the featurizer builds) are encoded once, from row 0, and the rest of
    each row attends to them (``llama.shared_prefix_kv``).
    """
    cfg = model_config(config)
    module = llama.LlamaForCausalLM(cfg, dtype=_DTYPES[config.dtype], remat=config.remat)
    ids = jnp.asarray(batch["input_ids"], jnp.int32)
    mask = jnp.asarray(batch["attention_mask"], jnp.int32)
    n_prefix = template_prefix_length(config)
    if 0 < n_prefix < ids.shape[1]:
        prefix_kv = llama.shared_prefix_kv(module, params["llama"], ids[0, :n_prefix])
        ids, mask = ids[:, n_prefix:], mask[:, n_prefix:]
        hidden = module.apply(
            {"params": params["llama"]}, ids, mask, None, prefix_kv, method=module.encode
        )
    else:
        hidden = module.apply({"params": params["llama"]}, ids, mask, method=module.encode)
    last = jnp.maximum(mask.sum(axis=-1) - 1, 0)  # right padding: the last real token
    h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # [batch, hidden]
    return module.apply({"params": params["llama"]}, h, token_ids, method=module.logits_from_hidden)


def score_probs(params: Params, inputs: dict[str, Any], config: CausalLLMConfig) -> jax.Array:
    """``[batch, 5]`` softmax over the label tokens ``[[1]]``..``[[5]]`` only (as the reference)."""
    logits = _answer_logits(params, inputs, config, jnp.asarray(label_token_ids(config)))
    return jax.nn.softmax(logits, axis=-1)


def win_rate(
    params: Params, inputs: dict[str, Any], strong: Any, weak: Any, config: CausalLLMConfig
) -> jax.Array:
    """P(strong beats weak) ``[batch]`` = 1 - P(score >= score_threshold); the pair is fixed by
    training (``strong``/``weak`` are ignored).
    """
    del strong, weak
    probs = score_probs(params, inputs, config)
    return 1.0 - probs[:, config.score_threshold - 1 :].sum(axis=-1)


def loss(
    params: Params, batch: dict[str, Any], rng: jax.Array, config: CausalLLMConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted cross-entropy of the label token over the whole vocabulary at the answer position.

    Metrics: ``accuracy`` (argmax over the five label tokens), ``label_nll`` (NLL of the
    five-way softmax that ``win_rate`` reads), ``label_mass`` (probability on label tokens).
    """
    del rng  # no dropout in the Llama blocks
    logits = _answer_logits(params, batch, config)  # [batch, vocab]
    label_ids = jnp.asarray(label_token_ids(config))
    label = jnp.asarray(batch["label"], jnp.int32)
    target = label_ids[label]
    log_z = jax.nn.logsumexp(logits, axis=-1)
    nll = log_z - jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
    weight = jnp.asarray(batch.get("weight", jnp.ones_like(nll)), jnp.float32)
    total = jnp.maximum(weight.sum(), 1e-8)
    value = (weight * nll).sum() / total
    label_logits = logits[:, label_ids]  # [batch, 5]
    label_lse = jax.nn.logsumexp(label_logits, axis=-1)
    label_nll = label_lse - jnp.take_along_axis(label_logits, label[:, None], axis=-1)[:, 0]
    metrics = {
        "accuracy": (weight * (label_logits.argmax(-1) == label)).sum() / total,
        "label_nll": (weight * label_nll).sum() / total,
        "label_mass": (weight * jnp.exp(label_lse - log_z)).sum() / total,
    }
    return value, metrics


ARCHITECTURE = Architecture(
    name="causal_llm",
    config_cls=CausalLLMConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    partition_rules=llama.LLAMA_PARTITION_RULES,
    description=(
        "Llama-family LM (SmolLM2-135M-Instruct standing in for Llama-3-8B) rating the prompt "
        "with label tokens [[1]]..[[5]]; P(strong) = 1 - P(score >= 4)"
    ),
    sequence_keys=("input_ids", "attention_mask"),
    mask_key="attention_mask",
    precision_key="dtype",  # load(precision=...) is the encoder's compute dtype
)
