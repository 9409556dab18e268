"""Evaluators run during training, built from the config's ``evals`` dict (one entry per name).

Each entry names its ``type`` and that type's arguments; its metrics are logged under its name::

    c.evals.gsm8k = dict(type="benchmark", benchmark="gsm8k", max_prompts=300)
    c.evals.dev = dict(type="dev_suite")

* ``benchmark``: APGR / APGR at 10 points / AUC of the router on a benchmark
  (:func:`routellm_jax.eval.benchmarks.load_benchmark`: a name such as ``mmlu``, ``gsm8k``,
  ``mt-bench``, or an outcome-file path; ``strong``, ``weak``, ``exclude_golden``, ``data_dir``
  go to it) -> ``bench/<name>/apgr`` ...; ``max_prompts`` scores a seeded subset (cheap mid-run
  evaluations), ``batch_size`` the prompts per call.
* ``dev_suite``: APGR per task-type group of the development suite
  (:mod:`routellm_jax.eval.dev_suite`, built from training-side data only) and the strong-call
  share per group at a 50% overall share -> ``dev/<name>/<group>/apgr``,
  ``dev/<name>/<group>/strong_share``, ``dev/<name>/mean_apgr``, ``dev/<name>/worst_apgr``.

The older single ``eval.benchmark`` (with ``eval.benchmark_args``) is the same as one
``benchmark`` entry named after the benchmark. The strong and weak models are looked up in the
architecture's ``models`` table by canonical name; a model-free (pair-specific) router scores the
pair it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from routellm_jax.data.model_names import canonical
from routellm_jax.eval.benchmarks import Benchmark, load_benchmark
from routellm_jax.eval.dev_suite import build_dev_suite, dev_prompts, score_dev_suite
from routellm_jax.eval.evaluate import evaluate_win_rates

Evaluator = Callable[[Any], dict[str, float]]


def win_rates_in_chunks(
    arch: Any,
    arch_cfg: Any,
    params: Any,
    inputs: Mapping[str, np.ndarray],
    strong: int,
    weak: int,
    batch_size: int = 512,
) -> np.ndarray:
    """``arch.win_rate`` over prepared ``inputs`` (``arch.prompt_inputs``), ``batch_size`` rows
    per call, as float64: the loop training-time evaluation and the experiment sweep share.
    A router with an encoder inside (token-sequence inputs) is compiled once per input shape;
    run eagerly it would go op by op.

    Example:
        >>> from routellm_jax.models.registry import get_architecture
        >>> from routellm_jax.models.featurizers import make_embedding_featurizer
        >>> arch = get_architecture("mf")
        >>> cfg = arch.make_config(models=("a", "b"), featurizer="hashing:8", text_dim=8, dim=4)
        >>> params = arch.init(jax.random.PRNGKey(0), cfg)
        >>> inputs = arch.prompt_inputs(["hi", "2+2?", "x"], make_embedding_featurizer("hashing:8"), cfg)
        >>> win_rates_in_chunks(arch, cfg, params, inputs, 0, 1, batch_size=2).shape
        (3,)
    """
    win_rate = arch.win_rate
    if getattr(arch, "sequence_keys", ()):
        win_rate = jax.jit(arch.win_rate, static_argnums=4)
    params = jax.device_get(params)
    n = len(next(iter(inputs.values()))) if inputs else 0
    out = [
        np.asarray(
            win_rate(
                params,
                {k: v[lo : lo + batch_size] for k, v in inputs.items()},
                strong,
                weak,
                arch_cfg,
            ),
            np.float64,
        )
        for lo in range(0, n, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0)


class _Scorer:
    """Win rates of one router on fixed prompts, for the pair ``strong``/``weak``."""

    def __init__(
        self,
        arch: Any,
        arch_cfg: Any,
        featurizer: Any,
        prompts: list[str],
        pair: tuple[str, str],
        batch_size: int,
        where: str,
    ) -> None:
        models = [canonical(m) for m in getattr(arch_cfg, "models", ()) or ()]
        self.strong = self.weak = 0
        if models:
            for role, model in zip(("strong", "weak"), pair):
                if canonical(model) not in models:
                    raise ValueError(
                        f"{where}: {role} model {canonical(model)!r} is not in the "
                        f"architecture's models {models}"
                    )
                setattr(self, role, models.index(canonical(model)))
        self.inputs = arch.prompt_inputs(prompts, featurizer, arch_cfg)
        self.arch, self.arch_cfg, self.batch_size = arch, arch_cfg, batch_size

    def __call__(self, params: Any) -> np.ndarray:
        return win_rates_in_chunks(
            self.arch, self.arch_cfg, params, self.inputs, self.strong, self.weak, self.batch_size
        )


class BenchmarkEvaluator:
    """APGR of the router on one benchmark, loaded once (see the module docstring)."""

    def __init__(
        self, name: str, spec: Mapping[str, Any], arch: Any, arch_cfg: Any, featurizer: Any
    ) -> None:
        args = dict(spec)
        args.pop("type", None)
        benchmark = args.pop("benchmark", None)
        if not benchmark:
            raise ValueError(f"evals.{name}: a benchmark evaluator needs 'benchmark'")
        max_prompts = int(args.pop("max_prompts", 0))
        batch_size = int(args.pop("batch_size", 512))
        bench = load_benchmark(str(benchmark), **args)
        if max_prompts and max_prompts < len(bench):
            index = np.sort(np.random.default_rng(0).choice(len(bench), max_prompts, replace=False))
            bench = dataclasses.replace(
                bench,
                prompts=bench.prompts[index],
                strong_scores=bench.strong_scores[index],
                weak_scores=bench.weak_scores[index],
            )
        self.name, self.bench = name, bench
        self.score = _Scorer(
            arch,
            arch_cfg,
            featurizer,
            [str(p) for p in bench.prompts],
            (bench.strong_model, bench.weak_model),
            batch_size,
            f"evals.{name} ({benchmark})",
        )

    def __call__(self, params: Any) -> dict[str, float]:
        m = evaluate_win_rates(self.bench, self.score(params)).metrics
        return {
            f"bench/{self.name}/apgr": float(m.apgr_trapezoid),
            f"bench/{self.name}/apgr_10pt": float(m.apgr_10pt),
            f"bench/{self.name}/auc": float(m.auc),
        }


class DevSuiteEvaluator:
    """APGR and strong-call share per task type on the development suite (module docstring)."""

    def __init__(
        self, name: str, spec: Mapping[str, Any], arch: Any, arch_cfg: Any, featurizer: Any
    ) -> None:
        args = dict(spec)
        args.pop("type", None)
        batch_size = int(args.pop("batch_size", 512))
        unknown = sorted(set(args) - {"data_dir"})
        if unknown:
            raise ValueError(f"evals.{name}: unknown dev_suite argument(s) {unknown}")
        self.name = name
        self.suite: dict[str, Benchmark] = build_dev_suite(args.get("data_dir") or None)
        first = next(iter(self.suite.values()))
        self.score = _Scorer(
            arch,
            arch_cfg,
            featurizer,
            dev_prompts(self.suite),
            (first.strong_model, first.weak_model),
            batch_size,
            f"evals.{name} (dev_suite)",
        )

    def __call__(self, params: Any) -> dict[str, float]:
        rates, by_group, lo = self.score(params), {}, 0
        for group, bench in self.suite.items():
            by_group[group] = rates[lo : lo + len(bench)]
            lo += len(bench)
        scores = score_dev_suite(self.suite, by_group, self.name)
        out = {
            f"dev/{self.name}/mean_apgr": scores.mean_apgr,
            f"dev/{self.name}/worst_apgr": scores.worst_apgr,
        }
        for group in self.suite:
            out[f"dev/{self.name}/{group}/apgr"] = float(scores.apgr[group])
            out[f"dev/{self.name}/{group}/strong_share"] = float(scores.strong_share[group])
        return out


EVALUATOR_TYPES: dict[str, type] = {
    "benchmark": BenchmarkEvaluator,
    "dev_suite": DevSuiteEvaluator,
}


def evaluator_specs(config: Any) -> dict[str, dict[str, Any]]:
    """``{name: spec}`` of a run config: its ``evals`` entries, plus the older single
    ``eval.benchmark`` as a ``benchmark`` entry named after it; ``data.data_dir`` is passed on
    unless an entry sets its own.

    Example:
        >>> from routellm_jax.training.config import default_config
        >>> c = default_config()
        >>> c.evals.dev = {"type": "dev_suite"}
        >>> c.eval.benchmark = "gsm8k"
        >>> sorted(evaluator_specs(c))
        ['dev', 'gsm8k']
    """
    specs: dict[str, dict[str, Any]] = {}
    evals = config.get("evals")
    for name, spec in (evals.to_dict() if evals is not None else {}).items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"evals.{name}: expected a dict with a 'type', got {spec!r}")
        kind = spec.get("type")
        if kind not in EVALUATOR_TYPES:
            raise ValueError(
                f"evals.{name}: unknown evaluator type {kind!r}; known {sorted(EVALUATOR_TYPES)}"
            )
        specs[str(name)] = dict(spec)
    legacy = config.eval.get("benchmark") if config.get("eval") is not None else ""
    if legacy:
        args = config.eval.benchmark_args.to_dict() if config.eval.benchmark_args else {}
        specs.setdefault(str(legacy), {"type": "benchmark", "benchmark": str(legacy), **args})
    data_dir = config.data.get("data_dir") if config.get("data") is not None else ""
    for spec in specs.values():
        if data_dir and "data_dir" not in spec:
            spec["data_dir"] = data_dir
    return specs


def make_evaluators(config: Any, arch: Any, arch_cfg: Any, featurizer: Any) -> dict[str, Evaluator]:
    """The run's evaluators by name (:func:`evaluator_specs`), each loading its data once."""
    return {
        name: EVALUATOR_TYPES[spec["type"]](name, spec, arch, arch_cfg, featurizer)
        for name, spec in evaluator_specs(config).items()
    }


def run_evaluators(evaluators: Mapping[str, Evaluator], params: Any) -> dict[str, float]:
    """Every evaluator's metrics on ``params``, merged.

    Example:
        >>> run_evaluators({"one": lambda params: {"bench/one/apgr": 0.5}}, None)
        {'bench/one/apgr': 0.5}
    """
    out: dict[str, float] = {}
    for evaluator in evaluators.values():
        out.update(evaluator(params))
    return out
