"""Training throughput (examples/s): our JAX training vs PyTorch references, same data, same process.

Two workloads, each timed after a warm-up (compilation excluded, reported separately):

* **MF** (the paper's matrix factorisation router): ours is the real training path (the ``mf``
  architecture, :class:`routellm_jax.training.train.Trainer` jitted step driven by the
  :class:`~routellm_jax.training.train.StepRunner` of ``train()``, the grain
  :class:`~routellm_jax.data.pipeline.BatchIterator`). The reference is RouteLLM's own loop from
  PyPI ``routellm`` 0.2.0 (``routers/matrix_factorization/train_matrix_factorization.py``),
  reproduced here without its OpenAI/Hub imports: ``PairwiseDataset`` + ``DataLoader`` (batch 64,
  shuffle), ``MFModel_Train`` (frozen prompt-embedding table, L2-normalised model embeddings, noise
  ``alpha``, projection + linear head without bias), ``Adam(lr=3e-4, weight_decay=1e-5)``, BCE.
  A second torch variant ("torch, pre-batched") drops the per-item ``DataLoader`` overhead, as a
  stronger reference.
* **BERT classifier** (MiniLM-L6 shapes: 6 layers, hidden 384, 12 heads, 3 classes, seq 128,
  batch 16, dropout on, AdamW): ours is a Flax :class:`~routellm_jax.models.encoders.bert.BertModel`
  + linear head on the pooled output through the same ``Trainer``; the reference is a plain
  ``transformers.BertForSequenceClassification`` fine-tuning loop. Weights are random (throughput
  does not depend on them), token ids random with 30-100% real tokens per row.

The data are synthetic with the real mixture's shapes (64 models, 1,100 distinct prompts, 384-d
MiniLM embeddings), generated once and fed to both sides.

Usage::

    python tools/bench_train.py [--steps 192] [--mf-batch 64 1024] [--bert-steps 4] [--rounds 3]
                                [--torch-threads 1 2] [--skip-mf] [--skip-bert]
                                [--length-buckets 32 64 128] [--data-dir ../shared/data]
                                [--steps-per-dispatch K] [--sweep-k 8 128] [--device-mb MB]

Every loop (ours and the references) is compiled and warmed up first, then timed in ``--rounds``
rounds in which the loops take turns, so a change of load (other jobs on the machine) reaches
every side alike; each side's best round counts. Each torch reference is timed at every
``--torch-threads`` count (default 1 and torch's default) and its best counts: on a loaded
machine a multi-threaded torch loop can collapse, and the ratio must not profit from that.

MF is timed three ways against the same torch references: one step per jitted call with batches
gathered on the host (the loop without the trainer's options), ``K`` steps per call
(``lax.scan``, ``config.steps_per_dispatch``) still streamed from the host, and ``K`` steps per
call with the examples on the device (``config.data.device_budget_mb``; batches gathered there by
index; the trainer's defaults). BERT is timed in float32 (the default) and, where the CPU
multiplies bf16 natively (:func:`~routellm_jax.models.encoders.bert.native_bf16_matmul`), with
bf16 matmul operands (``arch_config.dtype="bfloat16"``; float32 parameters, accumulation and
residual stream), and then transformers is also timed under ``torch.autocast(bfloat16)``, torch's
own mixed precision, so the option is compared precision for precision too. The CPU model, its
bf16 support and the load average are printed with the results.

With ``--length-buckets`` (default 32 64 128) BERT is also timed with the trainer's length
buckets (``config.data.length_buckets``: length-sorted windows, each batch cut to a bucket),
against transformers padding each random batch to its longest row; ``--data-dir`` draws the
rows' lengths from the real judge-mix prompts instead of 30-100% of ``--seq``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from routellm_jax.data.pipeline import BatchIterator, device_examples
from routellm_jax.models.encoders.bert import BertConfig, BertModel, native_bf16_matmul
from routellm_jax.models.registry import Architecture, get_architecture
from routellm_jax.training import sharding
from routellm_jax.training.config import (
    DEVICE_BUDGET_MB,
    STEPS_PER_DISPATCH,
    default_config,
    make_optimizer,
)
from routellm_jax.training.train import StepRunner, Trainer

# -------------------------------------------------------------------------- timed loops


@dataclasses.dataclass
class Loop:
    """A prepared training loop (compiled and warmed up): ``run(steps)`` runs about that many
    steps and returns the seconds they took; ``loss()`` the last loss (a host value)."""

    batch: int
    run: Callable[[int], float]
    loss: Callable[[], float]
    compile_s: float = 0.0
    block: int = 1  # steps per call: run() rounds the steps down to whole calls
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def steps(self, n: int) -> int:
        return max(self.block, n - n % self.block)


def interleaved(loops: dict[str, Loop], steps: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Time every loop ``rounds`` times, the loops alternating within each round, so a change of
    machine load hits every side alike; each side's best round counts (the least disturbed)."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(max(1, rounds)):
        for name, loop in loops.items():
            n = loop.steps(steps)
            times[name].append(n * loop.batch / loop.run(n))
    return {
        name: {
            "examples_per_s": max(rates),
            "median_examples_per_s": float(np.median(rates)),
            "rounds": rates,
            "compile_s": loops[name].compile_s,
            "loss": loops[name].loss(),
        }
        for name, rates in times.items()
    }


def at_threads(threads: int, loop: Loop) -> Loop:
    """``loop`` run with ``threads`` torch threads."""
    import torch  # local: torch (dev extra)

    def run(n: int) -> float:
        torch.set_num_threads(threads)
        return loop.run(n)

    return dataclasses.replace(loop, run=run, info={**loop.info, "threads": threads})


def best_of(timed: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    """Remove the ``prefix@<threads>`` entries of ``timed``; return the fastest, with its
    thread count."""
    names = [name for name in timed if name.startswith(prefix)]
    runs = {int(name.rsplit("@", 1)[1]): timed.pop(name) for name in names}
    threads = max(runs, key=lambda t: runs[t]["examples_per_s"])
    return {**runs[threads], "threads": threads, "by_threads": runs}


# -------------------------------------------------------------------------- data


def mf_data(n_battles: int, n_prompts: int, n_models: int, text_dim: int, seed: int = 0) -> dict:
    """Synthetic battles: prompt ids, an embedding table, model pairs, winner-first labels."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n_prompts, text_dim)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models  # never a self-battle
    return {
        "prompt_id": rng.integers(0, n_prompts, n_battles),
        "table": table,
        "model_a": a.astype(np.int32),
        "model_b": b.astype(np.int32),
        "winner_a": rng.random(n_battles) < 0.5,
    }


# -------------------------------------------------------------------------- MF: ours


def mf_examples(d: dict) -> tuple[Architecture, Any, dict[str, np.ndarray]]:
    """The ``mf`` architecture, its config and the examples it builds from :func:`mf_data`'s
    battles (per-battle embedding, pair, label)."""
    arch = get_architecture("mf")
    n_models = int(max(d["model_a"].max(), d["model_b"].max()) + 1)
    cfg = arch.make_config(
        models=tuple(f"m{i}" for i in range(n_models)),
        featurizer="hashing:384",
        text_dim=d["table"].shape[1],
        dim=128,
        alpha=0.1,
    )
    examples = {
        "embedding": d["table"][d["prompt_id"]],
        "model_a": d["model_a"],
        "model_b": d["model_b"],
        "label": d["winner_a"].astype(np.float32),
        "weight": np.ones(len(d["model_a"]), np.float32),
    }
    return arch, cfg, examples


def bench_mf_jax(
    d: dict,
    batch: int,
    steps: int,
    *,
    k: int = 1,
    device_mb: float = 0,
    warmup: int = 20,
) -> dict[str, float]:
    """Our training loop: :class:`StepRunner` over the jitted step and the grain iterator, ``k``
    steps per dispatch; ``device_mb`` > 0 puts the examples on the device (if they fit)."""
    arch, cfg, examples = mf_examples(d)
    return bench_trainer_jax(
        arch,
        cfg,
        examples,
        batch,
        steps,
        k=k,
        device_mb=device_mb,
        warmup=warmup,
    )


def prepare_trainer_jax(
    arch: Architecture,
    cfg: Any,
    examples: dict[str, np.ndarray],
    batch: int,
    *,
    k: int = 1,
    device_mb: float = 0,
    warmup: int = 20,
    total_steps: int = 100_000,
) -> Loop:
    """The real training path on ``examples``: :class:`Trainer` + :class:`StepRunner` +
    grain :class:`BatchIterator`, AdamW (lr 3e-4, weight decay 1e-5, constant), ``k`` steps per
    dispatch, ``warmup`` untimed steps after the compiling one."""

    oc = default_config().optimizer
    oc.lr, oc.weight_decay, oc.schedule = 3e-4, 1e-5, "constant"
    tx, schedule = make_optimizer(oc, total_steps)
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    trainer = Trainer(arch, cfg, tx, mesh, schedule=schedule)
    it = BatchIterator(examples, batch, seed=0, sharding=trainer.batch_sharding)
    data = device_examples(examples, trainer.batch_sharding, int(device_mb * 2**20))
    runner = StepRunner(trainer, it, k, data)
    box: dict[str, Any] = {}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for state, _, metrics in runner.segment(box["state"], n):
            box["state"], box["metrics"] = state, metrics
        jax.block_until_ready(box["metrics"])
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    box["state"] = trainer.init(jax.random.PRNGKey(0))
    run(k)
    compile_s = time.perf_counter() - t0
    run(max(k, warmup - warmup % k))
    return Loop(
        batch,
        run,
        lambda: float(np.asarray(box["metrics"]["loss"]).ravel()[-1]),
        compile_s,
        block=k,
        info={"on_device": data is not None, "trainer": trainer},
    )


def bench_trainer_jax(
    arch: Architecture,
    cfg: Any,
    examples: dict[str, np.ndarray],
    batch: int,
    steps: int,
    *,
    k: int = 1,
    device_mb: float = 0,
    warmup: int = 20,
) -> dict[str, float]:
    """:func:`prepare_trainer_jax`, then ``steps`` timed steps (whole blocks only)."""
    loop = prepare_trainer_jax(
        arch,
        cfg,
        examples,
        batch,
        k=k,
        device_mb=device_mb,
        warmup=warmup,
        total_steps=steps + warmup + k,
    )
    n = loop.steps(steps)
    dt = loop.run(n)
    assert loop.info["trainer"].compile_count() == 1
    return {
        "examples_per_s": n * batch / dt,
        "compile_s": loop.compile_s,
        "loss": loop.loss(),
        "on_device": loop.info["on_device"],
    }


# -------------------------------------------------------------------------- MF: RouteLLM torch


def _routellm_mf_modules():
    import torch  # local: RouteLLM's torch loop needs torch (dev extra)
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, Dataset

    class PairwiseDataset(Dataset):  # routellm train_matrix_factorization.PairwiseDataset
        def __init__(self, models_a, models_b, prompt_id, winner_a):
            self.models_a = torch.tensor(models_a, dtype=torch.int64)
            self.models_b = torch.tensor(models_b, dtype=torch.int64)
            self.prompt_id = [int(x) for x in prompt_id]
            self.winners = ["model_a" if w else "model_b" for w in winner_a]

        def __len__(self):
            return len(self.models_a)

        def __getitem__(self, index):
            if self.winners[index] == "model_a":
                return self.models_a[index], self.models_b[index], self.prompt_id[index]
            return self.models_b[index], self.models_a[index], self.prompt_id[index]

        def get_dataloaders(self, batch_size, shuffle=True):
            return DataLoader(self, batch_size, shuffle=shuffle)

    class MFModel_Train(nn.Module):  # routellm MFModel_Train (embeddings passed, not a .npy)
        def __init__(self, dim, num_models, embeddings, use_proj=True):
            super().__init__()
            self.P = nn.Embedding(num_models, dim)
            self.Q = nn.Embedding(*embeddings.shape).requires_grad_(False)
            self.Q.weight.data.copy_(torch.tensor(embeddings))
            self.use_proj = use_proj
            self.text_proj = nn.Linear(embeddings.shape[1], dim, bias=False)
            self.classifier = nn.Linear(dim, 1, bias=False)

        def forward(self, model_win, model_loss, prompt, test=False, alpha=0.05):
            w = F.normalize(self.P(model_win), p=2, dim=1)
            lo = F.normalize(self.P(model_loss), p=2, dim=1)
            prompt_embed = self.Q(prompt)
            if not test:
                prompt_embed += torch.randn_like(prompt_embed) * alpha
            prompt_embed = self.text_proj(prompt_embed)
            return self.classifier((w - lo) * prompt_embed).squeeze()

    return PairwiseDataset, MFModel_Train


def torch_sync(device: str) -> None:
    """Wait for the queued CUDA work, so a clock read after it times the work (no-op on CPU)."""
    import torch  # local: torch (dev extra)

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def bench_mf_torch(
    d: dict, batch: int, steps: int, *, dataloader: bool, warmup: int = 20, device: str = "cpu"
) -> dict[str, float]:
    """RouteLLM's MF training loop on ``device`` (``"cpu"`` or ``"cuda"``)."""
    loop = prepare_mf_torch(d, batch, dataloader=dataloader, warmup=warmup, device=device)
    return {"examples_per_s": steps * batch / loop.run(steps), "loss": loop.loss()}


def prepare_mf_torch(
    d: dict, batch: int, *, dataloader: bool, warmup: int = 20, device: str = "cpu"
) -> Loop:
    """RouteLLM's MF training loop (``dataloader``: its DataLoader; else pre-batched tensors)."""
    import torch  # local: torch (dev extra)
    from torch import nn

    PairwiseDataset, MFModel_Train = _routellm_mf_modules()
    torch.manual_seed(42)
    n_models = int(max(d["model_a"].max(), d["model_b"].max()) + 1)
    net = MFModel_Train(128, n_models, d["table"]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, weight_decay=1e-5)
    loss_fn = nn.BCEWithLogitsLoss(reduction="mean")
    ds = PairwiseDataset(d["model_a"], d["model_b"], d["prompt_id"], d["winner_a"])

    def batches():
        if dataloader:  # RouteLLM's loop: per-item __getitem__ + default collate
            while True:
                for a, b, p in ds.get_dataloaders(batch, shuffle=True):
                    yield a.to(device), b.to(device), p.to(device)
        else:  # pre-batched tensors: the loop without DataLoader overhead
            win = torch.where(torch.tensor(d["winner_a"]), ds.models_a, ds.models_b)
            los = torch.where(torch.tensor(d["winner_a"]), ds.models_b, ds.models_a)
            pid = torch.tensor(d["prompt_id"], dtype=torch.int64)
            win, los, pid = win.to(device), los.to(device), pid.to(device)
            n = len(win)
            while True:
                perm = torch.randperm(n, device=device)
                for lo in range(0, n - batch + 1, batch):
                    idx = perm[lo : lo + batch]
                    yield win[idx], los[idx], pid[idx]

    it = batches()

    def step():
        a, b, p = next(it)
        out = net(a, b, p, alpha=0.1)
        ls = loss_fn(out, torch.ones_like(out))
        opt.zero_grad()
        ls.backward()
        opt.step()
        return ls

    box: dict[str, Any] = {}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            box["loss"] = step()
        torch_sync(device)
        return time.perf_counter() - t0

    run(warmup)
    return Loop(batch, run, lambda: float(box["loss"].detach()))


# -------------------------------------------------------------------------- IRT


def irt_examples(d: dict, seed: int = 1) -> dict[str, np.ndarray]:
    """The irt architecture's two row kinds from :func:`mf_data`'s battles: the first half of the
    rows become outcome rows (per-model 0/1 results, 70% of models observed), the rest battle
    rows, as :func:`routellm_jax.models.irt.examples_from_records` lays them out."""
    rng = np.random.default_rng(seed)
    n = len(d["model_a"])
    n_models = int(max(d["model_a"].max(), d["model_b"].max()) + 1)
    is_outcome = np.arange(n) < n // 2
    outcome = (rng.random((n, n_models)) < 0.5).astype(np.float32) * is_outcome[:, None]
    seen = (rng.random((n, n_models)) < 0.7).astype(np.float32) * is_outcome[:, None]
    return {
        "embedding": d["table"][d["prompt_id"]],
        "outcome": outcome,
        "outcome_weight": seen,
        "model_a": np.where(is_outcome, 0, d["model_a"]).astype(np.int32),
        "model_b": np.where(is_outcome, 0, d["model_b"]).astype(np.int32),
        "label": np.where(is_outcome, 0.0, d["winner_a"]).astype(np.float32),
        "battle_weight": (~is_outcome).astype(np.float32),
    }


def _irt_config(examples: dict[str, np.ndarray]) -> Any:
    n_models = examples["outcome"].shape[1]
    return get_architecture("irt").make_config(
        models=tuple(f"m{i}" for i in range(n_models)),
        featurizer=f"hashing:{examples['embedding'].shape[1]}",
        text_dim=examples["embedding"].shape[1],
    )


def bench_irt_jax(
    examples: dict[str, np.ndarray],
    batch: int,
    steps: int,
    *,
    k: int = 1,
    device_mb: float = 0,
    warmup: int = 20,
) -> dict[str, float]:
    """Our training loop for the irt architecture (default config) on :func:`irt_examples`."""
    arch = get_architecture("irt")
    cfg = _irt_config(examples)
    return bench_trainer_jax(
        arch, cfg, examples, batch, steps, k=k, device_mb=device_mb, warmup=warmup
    )


def bench_irt_torch(
    examples: dict[str, np.ndarray],
    batch: int,
    steps: int,
    *,
    warmup: int = 20,
    device: str = "cpu",
) -> dict[str, float]:
    """The same irt step in plain PyTorch (default config: MLP item model with tanh-GELU, noise
    ``alpha`` on the embedding, weighted outcome BCE + weighted Bradley-Terry loss, theta L2),
    AdamW(lr 3e-4, weight decay 1e-5), batches pre-batched on ``device`` (no DataLoader)."""
    import torch  # local: torch (dev extra)
    from torch import nn
    from torch.nn import functional as F

    cfg = _irt_config(examples)
    torch.manual_seed(0)
    n_models, k = len(cfg.models), cfg.latent_dim

    class IRT(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(cfg.text_dim, cfg.hidden_dim)
            self.item = nn.Linear(cfg.hidden_dim, k + 1)
            self.theta = nn.Parameter(torch.randn(n_models, k) / k**0.5)
            self.bias = nn.Parameter(torch.zeros(n_models))

        def forward(self, emb):
            out = self.item(F.gelu(self.hidden(emb), approximate="tanh"))
            a, b = out[:, :k], out[:, k]
            return a @ self.theta.T + self.bias[None, :] - b[:, None]

    net = IRT().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=1e-5)
    data = {key: torch.as_tensor(v).to(device) for key, v in examples.items()}
    n = len(data["label"])

    def batches():
        while True:
            perm = torch.randperm(n, device=device)
            for lo in range(0, n - batch + 1, batch):
                idx = perm[lo : lo + batch]
                yield {key: v[idx] for key, v in data.items()}

    it = batches()

    def step():
        b = next(it)
        emb = b["embedding"] + cfg.alpha * torch.randn_like(b["embedding"])
        s = net(emb)
        ow = b["outcome_weight"] * cfg.outcome_weight
        o_loss = F.binary_cross_entropy_with_logits(s, b["outcome"], reduction="none")
        rows = torch.arange(s.shape[0], device=device)
        diff = s[rows, b["model_a"].long()] - s[rows, b["model_b"].long()]
        bw = b["battle_weight"] * cfg.battle_weight
        b_loss = F.binary_cross_entropy_with_logits(diff, b["label"], reduction="none")
        total = (ow * o_loss).sum() + (bw * b_loss).sum()
        loss = total / (ow.sum() + bw.sum()).clamp(min=1e-12)
        loss = loss + 0.5 * cfg.theta_l2 * (net.theta**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    torch_sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        ls = step()
    torch_sync(device)
    dt = time.perf_counter() - t0
    return {"examples_per_s": steps * batch / dt, "loss": float(ls.detach())}


# -------------------------------------------------------------------------- BERT classifier

MINILM = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}
# A 2-layer, 32-wide encoder: the BERT-step tools' quick check of themselves (``--tiny``).
TINY = {
    **MINILM,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def bert_data(
    n: int, seq: int, vocab: int, seed: int = 0, lengths: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Random token rows; row lengths drawn from ``lengths`` (e.g. real prompts' token counts)
    or uniform over 30-100% of ``seq``."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(n, seq)).astype(np.int32)
    if lengths is None:
        lengths = rng.integers(int(0.3 * seq), seq + 1, size=n)
    else:
        lengths = np.clip(rng.choice(np.asarray(lengths), size=n), 2, seq)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    ids[:, 0] = 101
    ids = ids * mask
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "label": rng.integers(0, 3, n).astype(np.int32),
    }


@dataclasses.dataclass(frozen=True)
class _BenchBertConfig:
    models: tuple[str, ...] = ()


def _bench_bert_arch(shapes: dict[str, int] = MINILM, dtype: Any = jnp.float32):
    """A BERT-classifier Architecture over the project's Flax BertModel (the bench's own: the
    same network as the torch reference, independent of the ``bert`` router's featurisation);
    ``dtype``: the encoder's matmul operands (as ``arch_config.dtype`` of the ``bert`` router)."""

    bcfg = BertConfig(**shapes)

    class Classifier(nn.Module):
        @nn.compact
        def __call__(self, ids, mask, deterministic):
            encoder = BertModel(bcfg, dtype=dtype, name="bert")
            _, pooled = encoder(ids, mask, deterministic=deterministic)
            pooled = nn.Dropout(0.1)(pooled, deterministic=deterministic)
            return nn.Dense(3, name="classifier")(pooled)

    module = Classifier()

    def init(rng, cfg):
        ids = jnp.ones((1, 8), jnp.int32)
        return module.init(rng, ids, ids, True)["params"]

    def loss(params, batch, rng, cfg):
        logits = module.apply(
            {"params": params},
            batch["input_ids"],
            batch["attention_mask"],
            False,
            rngs={"dropout": rng},
        )
        value = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return value, {}

    def unused(*a, **k):
        raise NotImplementedError("bench-only architecture")

    return Architecture(
        name="bench_bert_classifier",
        config_cls=_BenchBertConfig,
        init=init,
        make_featurizer=unused,
        examples_from_records=unused,
        loss=loss,
        prompt_inputs=unused,
        win_rate=unused,
    ), jax


def real_prompt_lengths(data_dir: str) -> np.ndarray:
    """MiniLM token counts (with [CLS]/[SEP]) of the judge-mix training prompts (AlpacaEval
    instructions + arena-bench-v1), the prompts ``experiments/bert_minilm.py`` trains on."""

    root = Path(data_dir)
    prompts = [
        json.loads(line)["instruction"]
        for line in (root / "derived/alpaca_eval_prompts.jsonl").read_text().splitlines()
        if line.strip()
    ]
    prompts += pd.read_csv(root / "derived/arena_bench_v1_score_matrix.csv")["prompt"].tolist()
    arch = get_architecture("bert")
    tokenizer = arch.make_featurizer(arch.make_config())
    _, mask = tokenizer(prompts, 512)
    return np.asarray(mask).sum(axis=1)


def bench_bert_jax(
    d: dict,
    batch: int,
    steps: int,
    warmup: int = 2,
    buckets: tuple[int, ...] = (),
    shapes: dict[str, int] = MINILM,
    dtype: Any = jnp.float32,
) -> dict[str, float]:
    """Our BERT-classifier training step (``shapes``: the encoder's sizes, MiniLM-L6 default)."""
    loop = prepare_bert_jax(d, batch, warmup, buckets, shapes, dtype)
    dt = loop.run(steps)
    return {
        "examples_per_s": steps * batch / dt,
        "compile_s": loop.compile_s,
        "loss": loop.loss(),
        "compiles": loop.info["trainer"].compile_count(),
    }


def prepare_bert_jax(
    d: dict,
    batch: int,
    warmup: int = 2,
    buckets: tuple[int, ...] = (),
    shapes: dict[str, int] = MINILM,
    dtype: Any = jnp.float32,
) -> Loop:
    """Our BERT-classifier training loop through :class:`Trainer` (one step per call), every
    batch width it can meet compiled up front."""

    arch, jax = _bench_bert_arch(shapes, dtype)
    oc = default_config().optimizer
    oc.lr, oc.weight_decay, oc.schedule = 3e-5, 0.01, "constant"
    tx, schedule = make_optimizer(oc, 100_000)
    mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
    trainer = Trainer(arch, _BenchBertConfig(), tx, mesh, schedule=schedule)
    bucketing = (
        {
            "length_buckets": buckets,
            "sequence_keys": ("input_ids", "attention_mask"),
            "mask_key": "attention_mask",
        }
        if buckets
        else {}
    )
    it = BatchIterator(d, batch, seed=0, sharding=trainer.batch_sharding, **bucketing)
    t0 = time.perf_counter()
    box = {"state": trainer.init(jax.random.PRNGKey(0))}
    # Compile every width the timed steps can meet (each bucket and the full width) up front.
    first = {k: np.asarray(v[:batch]) for k, v in d.items()}
    full = first["input_ids"].shape[1]
    for width in sorted({min(b, full) for b in buckets} | {full}):
        cut = {k: v[:, :width] if v.ndim == 2 else v for k, v in first.items()}
        box["state"], box["metrics"] = trainer.step(
            box["state"], jax.device_put(cut, trainer.batch_sharding)
        )
    jax.block_until_ready(box["metrics"])
    compile_s = time.perf_counter() - t0

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            box["state"], box["metrics"] = trainer.step(box["state"], next(it))
        jax.block_until_ready(box["metrics"])
        return time.perf_counter() - t0

    run(warmup)
    return Loop(
        batch,
        run,
        lambda: float(box["metrics"]["loss"]),
        compile_s,
        info={"trainer": trainer},
    )


def bench_bert_torch(
    d: dict,
    batch: int,
    steps: int,
    warmup: int = 2,
    dynamic_padding: bool = False,
    shapes: dict[str, int] = MINILM,
    device: str = "cpu",
) -> dict[str, float]:
    """transformers' ``BertForSequenceClassification`` fine-tuning loop on ``device``."""
    loop = prepare_bert_torch(d, batch, warmup, dynamic_padding, shapes, device)
    return {"examples_per_s": steps * batch / loop.run(steps), "loss": loop.loss()}


def prepare_bert_torch(
    d: dict,
    batch: int,
    warmup: int = 2,
    dynamic_padding: bool = False,
    shapes: dict[str, int] = MINILM,
    device: str = "cpu",
    autocast_bf16: bool = False,
) -> Loop:
    """transformers' ``BertForSequenceClassification`` fine-tuning loop on ``device``.

    ``dynamic_padding`` cuts each (random) batch to its longest row, as transformers'
    ``DataCollatorWithPadding`` does: the usual way to fine-tune on variable-length text.
    ``autocast_bf16`` runs the forward pass under ``torch.autocast(dtype=bfloat16)`` (torch's own
    mixed precision: bf16 matmuls, float32 parameters and optimizer), the reference for our bf16
    matmul option."""
    import torch  # local: torch + transformers (dev extra)
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(**shapes, num_labels=3, attn_implementation="eager")
    ).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    ids = torch.tensor(d["input_ids"], dtype=torch.long, device=device)
    mask = torch.tensor(d["attention_mask"], dtype=torch.long, device=device)
    labels = torch.tensor(d["label"], dtype=torch.long, device=device)
    lengths = d["attention_mask"].sum(1)  # on the host: no device sync to pick a width
    n = len(ids)

    def step(i):
        lo = (i * batch) % (n - batch + 1)
        width = int(lengths[lo : lo + batch].max()) if dynamic_padding else ids.shape[1]
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=autocast_bf16):
            out = model(
                input_ids=ids[lo : lo + batch, :width],
                attention_mask=mask[lo : lo + batch, :width],
                labels=labels[lo : lo + batch],
            )
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        return out.loss

    box: dict[str, Any] = {"i": 0}

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            box["loss"] = step(box["i"])
            box["i"] += 1
        torch_sync(device)
        return time.perf_counter() - t0

    run(warmup)
    return Loop(batch, run, lambda: float(box["loss"].detach()))


# -------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=192, help="timed MF steps per side and round")
    p.add_argument("--mf-batch", type=int, nargs="+", default=[64, 1024])
    p.add_argument("--battles", type=int, default=100_000)
    p.add_argument("--bert-steps", type=int, default=4, help="timed BERT steps per side and round")
    p.add_argument("--bert-batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed rounds per side, the sides alternating; each side's best round counts",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        default=[],
        help="torch thread counts each reference is timed at, the best counting (default: 1 and "
        "torch's default). On a loaded machine torch's OpenMP threads wait on each other (and on "
        "XLA's, in one process), which can collapse a multi-threaded torch loop: one thread is "
        "then the stronger reference",
    )
    p.add_argument("--skip-bert", action="store_true")
    p.add_argument("--skip-mf", action="store_true")
    p.add_argument(
        "--length-buckets",
        type=int,
        nargs="*",
        default=[32, 64, 128],
        help="also time BERT with these training length buckets (none: skip)",
    )
    p.add_argument(
        "--data-dir",
        default="",
        help="shared data folder: BERT rows take the judge-mix prompts' real token counts",
    )
    p.add_argument(
        "--steps-per-dispatch",
        type=int,
        default=STEPS_PER_DISPATCH,
        help="train steps per jitted call of the multi-step variants (the config default)",
    )
    p.add_argument(
        "--sweep-k",
        type=int,
        nargs="*",
        default=[],
        help="also time these steps-per-call values with the examples on the device",
    )
    p.add_argument(
        "--device-mb",
        type=float,
        default=DEVICE_BUDGET_MB,
        help="device-memory budget for the on-device variants (config.data.device_budget_mb)",
    )
    args = p.parse_args(argv)

    import torch  # local: torch (dev extra)

    args.torch_threads = sorted(set(args.torch_threads or [1, torch.get_num_threads()]))
    results: dict[str, Any] = {"machine": machine()}
    bf16 = native_bf16_matmul()
    print(
        f"CPU: {results['machine']['cpu']} ({results['machine']['cores']} cores; native bf16 "
        f"matmul: {'yes' if bf16 else 'no'}) | load {results['machine']['load']} | torch "
        f"threads: best of {args.torch_threads} | {args.rounds} alternating rounds, best round "
        "per side"
    )
    k = args.steps_per_dispatch
    if not args.skip_mf:
        results.update(mf_section(args, k))
    if not args.skip_bert:
        results.update(bert_section(args, bf16))
    results["machine"]["load_after"] = machine()["load"]
    print(f"load at the end: {results['machine']['load_after']}")
    return results


def mf_section(args: argparse.Namespace, k: int) -> dict[str, Any]:
    """MF at each ``--mf-batch``: RouteLLM's loop, pre-batched torch, and our variants."""
    d = mf_data(args.battles, 1100, 64, 384)
    arch, cfg, examples = mf_examples(d)
    variants = {
        "1 step/call, streamed (no options)": {"k": 1, "device_mb": 0},
        f"{k} steps/call, streamed": {"k": k, "device_mb": 0},
        f"{k} steps/call, on device (defaults)": {"k": k, "device_mb": args.device_mb},
    }
    for extra in args.sweep_k:
        variants[f"{extra} steps/call, on device"] = {"k": extra, "device_mb": args.device_mb}
    out = {}
    for bs in args.mf_batch:
        loops = {}
        for t in args.torch_threads:
            loops[f"routellm_torch@{t}"] = at_threads(t, prepare_mf_torch(d, bs, dataloader=True))
            loops[f"torch_prebatched@{t}"] = at_threads(
                t, prepare_mf_torch(d, bs, dataloader=False)
            )
        loops.update(
            {
                name: prepare_trainer_jax(arch, cfg, examples, bs, **kw)
                for name, kw in variants.items()
            }
        )
        timed = interleaved(loops, args.steps, args.rounds)
        ref, fast = best_of(timed, "routellm_torch@"), best_of(timed, "torch_prebatched@")
        out[f"mf_b{bs}"] = {"jax": timed, "routellm_torch": ref, "torch_prebatched": fast}
        print(
            f"MF batch {bs}: RouteLLM torch loop {ref['examples_per_s']:,.0f} ex/s "
            f"({ref['threads']} threads) | torch pre-batched {fast['examples_per_s']:,.0f} ex/s "
            f"({fast['threads']} threads)"
        )
        for name, r in timed.items():
            print(
                f"  ours, {name}: {r['examples_per_s']:,.0f} ex/s (compile {r['compile_s']:.1f}s)"
                f" -> {r['examples_per_s'] / ref['examples_per_s']:.2f}x RouteLLM, "
                f"{r['examples_per_s'] / fast['examples_per_s']:.2f}x pre-batched"
            )
    return out


def bert_section(args: argparse.Namespace, bf16: bool) -> dict[str, Any]:
    """BERT at full width against transformers, and with length buckets against transformers
    padding each batch to its longest row; ours with defaults and with the options."""
    lengths = real_prompt_lengths(args.data_dir) if args.data_dir else None
    if lengths is not None:
        print(
            f"BERT row lengths: {len(lengths)} real prompts, median {np.median(lengths):.0f}"
            f" tokens, {np.mean(lengths > args.seq):.0%} longer than {args.seq} (cut)"
        )
    n_rows = args.bert_batch * (args.bert_steps * args.rounds + 8)
    bd = bert_data(max(256, n_rows), args.seq, MINILM["vocab_size"], lengths=lengths)
    # The option: bf16 matmul operands (arch_config.dtype), timed only where they are native.
    options = {"dtype": jnp.bfloat16} if bf16 else {}
    label = "bf16 matmuls"
    buckets = tuple(args.length_buckets or ())
    bb, threads = args.bert_batch, args.torch_threads
    loops = {f"transformers@{t}": at_threads(t, prepare_bert_torch(bd, bb)) for t in threads}
    loops["ours, float32 (defaults)"] = prepare_bert_jax(bd, bb)
    if options:
        loops[f"ours, {label}"] = prepare_bert_jax(bd, bb, **options)
        for t in threads:
            loops[f"transformers bf16 autocast@{t}"] = at_threads(
                t, prepare_bert_torch(bd, bb, autocast_bf16=True)
            )
    if buckets:
        for t in threads:
            loops[f"transformers padded@{t}"] = at_threads(
                t, prepare_bert_torch(bd, bb, dynamic_padding=True)
            )
        loops[f"ours, buckets {list(buckets)}"] = prepare_bert_jax(bd, bb, buckets=buckets)
        if options:
            loops[f"ours, buckets {list(buckets)}, {label}"] = prepare_bert_jax(
                bd, bb, buckets=buckets, **options
            )
    timed = interleaved(loops, args.bert_steps, args.rounds)
    ref = best_of(timed, "transformers@")
    padded = best_of(timed, "transformers padded@") if buckets else None
    autocast = best_of(timed, "transformers bf16 autocast@") if options else None
    out: dict[str, Any] = {
        "bert": timed,
        "transformers": ref,
        "transformers_padded": padded,
        "transformers_bf16_autocast": autocast,
    }
    print(
        f"BERT-cls (MiniLM-L6, seq {args.seq}, batch {bb}): transformers "
        f"{ref['examples_per_s']:.1f} ex/s ({ref['threads']} threads)"
        + (
            f", padded to each batch's longest row {padded['examples_per_s']:.1f} ex/s "
            f"({padded['threads']} threads)"
            if padded
            else ""
        )
        + (
            f", under bf16 autocast {autocast['examples_per_s']:.1f} ex/s "
            f"({autocast['threads']} threads)"
            if autocast
            else ""
        )
    )
    for name, r in timed.items():
        if not name.startswith("ours"):
            continue
        bucketed = "buckets" in name
        base = padded if bucketed else ref
        against = "transformers padded per batch" if bucketed else "transformers at equal width"
        full = timed["ours, float32 (defaults)"]["examples_per_s"]
        print(
            f"  {name}: {r['examples_per_s']:.1f} ex/s (compile {r['compile_s']:.1f}s, loss "
            f"{r['loss']:.4f}"
            + (f", {r['examples_per_s'] / full:.2f}x our float32 full width" if bucketed else "")
            + f") -> {r['examples_per_s'] / base['examples_per_s']:.2f}x {against}"
            + (
                f", {r['examples_per_s'] / autocast['examples_per_s']:.2f}x transformers under "
                "bf16 autocast"
                if autocast and label in name and not bucketed
                else ""
            )
        )
    return out


def machine() -> dict[str, Any]:
    """CPU model, core count and 1/5/15-minute load averages (other jobs change the numbers)."""

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": cpu, "cores": os.cpu_count(), "load": " ".join(f"{x:.2f}" for x in load)}


if __name__ == "__main__":
    main()
