"""The model card: everything about a zoo entry except its weights, as validated JSON.

``card.json`` sits next to the Orbax checkpoint of the inference parameters. It names the
architecture and its config (the config dataclass's fields, as JSON), the frozen base encoder by
name, revision and file hashes (fetched and verified at load time, never copied into the entry),
the tokenizer, the model-name table, the training data card, the calibration table (a threshold
for each strong-call share 5%..95% on a stated reference prompt set), evaluation results with the
command that produced them, the license and the commit the entry was exported from. Every
checkpoint file is listed with its size and sha256, so a local entry folder is verified before
anything is restored.

Errors name the file and the key path (``card.json: calibration.thresholds[3]: ...``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

CARD_FORMAT = 1
CARD_FILE = "card.json"
# Strong-call shares of the calibration table: 5%, 10%, ..., 95%.
CALIBRATION_SHARES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


# The paper's strong/weak pair (canonical names of routellm_jax.data.model_names).
PAPER_STRONG = "gpt-4-1106-preview"
PAPER_WEAK = "mixtral-8x7b-instruct-v0.1"


class CardError(ValueError):
    """A malformed card; the message names the file and the key."""


class _Reader:
    """Typed access to a JSON object that names the key path in every error."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise CardError(f"{where}: expected an object, got {type(obj).__name__}")
        self.obj = obj
        self.where = where

    def _fail(self, key: str, msg: str) -> CardError:
        return CardError(f"{self.where}.{key}: {msg}" if self.where else f"{key}: {msg}")

    def get(self, key: str, kind: Any, default: Any = dataclasses.MISSING) -> Any:
        if key not in self.obj:
            if default is dataclasses.MISSING:
                raise self._fail(key, "missing")
            return default
        value = self.obj[key]
        if value is None and default is None:
            return None
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, int) and not isinstance(value, bool)
            if kind is int
            else isinstance(value, kind)
        )
        if not ok:
            raise self._fail(key, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
        return float(value) if kind is float else value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}" if self.where else key)

    def check_keys(self, known: set[str]) -> None:
        unknown = sorted(set(self.obj) - known)
        if unknown:
            raise CardError(
                f"{self.where or 'card'}: unknown key(s) {unknown}; known: {sorted(known)}"
            )


@dataclasses.dataclass
class EncoderRef:
    """The pretrained base encoder, referenced (not copied) when frozen.

    ``files`` maps file name -> sha256 of the files the encoder is loaded from.
    """

    name: str
    revision: str = ""
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    frozen: bool = True


@dataclasses.dataclass
class DataCard:
    """What the router was trained on. ``sources``: ``[{"name", "rows", "license"?...}]``."""

    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    decontamination: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: str = ""
    mixture: dict[str, Any] = dataclasses.field(default_factory=dict)  # name, seed, spec

    @classmethod
    def from_mixture_card(cls, card: dict[str, Any]) -> DataCard:
        """A data card from the trainer's ``data_card.json`` (a mixture card of
        :mod:`routellm_jax.data.mixtures`: ``sources``, ``totals``, ``decontamination``...), or
        from a file already in DataCard form.

        Example:
            >>> DataCard.from_mixture_card({"name": "judge", "sources": [], "totals": {"a": 3}}).counts
            {'a': 3}
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if "totals" not in card and set(card) <= known:
            return cls(**card)
        mixture = {k: card[k] for k in ("name", "seed", "spec", "card_version") if k in card}
        if "model_table_version" in card:
            mixture["model_table_version"] = card["model_table_version"]
        sources = [
            s if isinstance(s, dict) and "name" in s else {"name": str(s)}
            for s in card.get("sources", [])
        ]
        return cls(
            sources=sources,
            counts=dict(card.get("totals", {})),
            decontamination=dict(card.get("decontamination") or {}),
            notes=str(card.get("source", "")),
            mixture=mixture,
        )


@dataclasses.dataclass
class Calibration:
    """Thresholds on P(strong wins) that send a given share of the reference prompts to the
    strong model: route strong when ``win_rate >= thresholds[i]`` for ``shares[i]``.

    ``min_win_rate``/``max_win_rate`` of the reference set extend the table to shares 1 and 0.
    """

    reference: str  # what the reference prompt set is (name, source, size)
    n_prompts: int
    strong: str
    weak: str
    shares: list[float]
    thresholds: list[float]
    min_win_rate: float
    max_win_rate: float


@dataclasses.dataclass
class EvalResult:
    """One benchmark result: APGR, CPT at given PGR targets, and the command that produced it."""

    benchmark: str
    apgr: float
    cpt: dict[str, float] = dataclasses.field(default_factory=dict)  # {"50%": strong share, ...}
    command: str = ""
    notes: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CheckpointRef:
    """Where the Orbax checkpoint is (relative to the entry) and its files' sizes + sha256."""

    path: str = "params"
    format: str = "orbax-standard"
    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelCard:
    """A zoo entry's card. :meth:`load`/:meth:`save` read and write ``card.json``.

    Example:
        >>> import tempfile
        >>> from routellm_jax.zoo.cache import pull
        >>> with tempfile.TemporaryDirectory() as cache:  # the bundled entry, unpacked
        ...     entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache)
        ...     card = ModelCard.load(entry_dir / "card.json")
        >>> card.architecture, card.default_strong
        ('mf', 'gpt-4-1106-preview')
    """

    name: str
    version: str
    architecture: str
    config: dict[str, Any]
    models: list[str]
    default_strong: str
    default_weak: str
    checkpoint: CheckpointRef
    description: str = ""
    encoder: EncoderRef | None = None
    tokenizer: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: DataCard = dataclasses.field(default_factory=DataCard)
    calibration: Calibration | None = None
    evals: list[EvalResult] = dataclasses.field(default_factory=list)
    license: str = ""
    commit: str = ""
    created: str = ""
    format: int = CARD_FORMAT
    # For an architecture that is not built in: the plugin that provides it, {"module",
    # "distribution", "version"} (routellm_jax.models.plugins.provenance); {} when built in.
    plugin: dict[str, str] = dataclasses.field(default_factory=dict)

    # ---- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        obj = _jsonable(dataclasses.asdict(self))
        if not obj["plugin"]:
            del obj["plugin"]  # built-in architecture: the card reads as it did before plugins
        return obj

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``card.json`` (validated first, so a bad card is never written)."""
        text = json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"
        ModelCard.from_json(json.loads(text), str(path))
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelCard:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CardError(f"{path}: no model card (card.json) here") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise CardError(f"{path}: not valid JSON (line {err.lineno}): {err.msg}") from err
        return cls.from_json(obj, str(path))

    @classmethod
    def from_json(cls, obj: Any, source: str = "card.json") -> ModelCard:
        """Validate and build; errors read ``SOURCE: key.path: problem``."""
        try:
            return cls._from_json(obj)
        except CardError as err:
            raise CardError(f"{source}: {err}") from None

    @classmethod
    def _from_json(cls, obj: Any) -> ModelCard:
        r = _Reader(obj, "")
        r.check_keys({f.name for f in dataclasses.fields(cls)})
        fmt = r.get("format", int, CARD_FORMAT)
        if fmt != CARD_FORMAT:
            raise CardError(f"format: expected {CARD_FORMAT}, got {fmt}")
        models = r.get("models", list)
        for i, m in enumerate(models):
            if not isinstance(m, str):
                raise CardError(f"models[{i}]: expected a model name, got {m!r}")
        strong = r.get("default_strong", str)
        weak = r.get("default_weak", str)
        for key, value in (("default_strong", strong), ("default_weak", weak)):
            if models and value not in models:
                raise CardError(f"{key}: {value!r} is not in models ({len(models)} names)")

        ck = r.sub("checkpoint")
        ck.check_keys({"path", "format", "files"})
        files = ck.get("files", dict)
        for rel, info in files.items():
            _check_inside(rel, f"checkpoint.files[{rel!r}]")
            fr = _Reader(info, f"checkpoint.files[{rel!r}]")
            fr.get("size", int)
            sha = fr.get("sha256", str)
            if len(sha) != 64:
                raise CardError(f"checkpoint.files[{rel!r}].sha256: not a sha256: {sha!r}")
        checkpoint = CheckpointRef(
            path=_check_inside(ck.get("path", str, "params"), "checkpoint.path"),
            format=ck.get("format", str, "orbax-standard"),
            files=files,
        )

        encoder = None
        if r.obj.get("encoder") is not None:
            er = r.sub("encoder")
            er.check_keys({f.name for f in dataclasses.fields(EncoderRef)})
            enc_files = er.get("files", dict, {})
            for fname, sha in enc_files.items():
                if not isinstance(sha, str) or len(sha) != 64:
                    raise CardError(f"encoder.files[{fname!r}]: not a sha256: {sha!r}")
            encoder = EncoderRef(
                name=er.get("name", str),
                revision=er.get("revision", str, ""),
                files=enc_files,
                frozen=er.get("frozen", bool, True),
            )

        dr = r.sub("data") if "data" in r.obj else _Reader({}, "data")
        dr.check_keys({f.name for f in dataclasses.fields(DataCard)})
        sources = dr.get("sources", list, [])
        for i, s in enumerate(sources):
            if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                raise CardError(f"data.sources[{i}]: expected an object with a 'name'")
        data = DataCard(
            sources=sources,
            counts=dr.get("counts", dict, {}),
            decontamination=dr.get("decontamination", dict, {}),
            notes=dr.get("notes", str, ""),
            mixture=dr.get("mixture", dict, {}),
        )

        calibration = None
        if r.obj.get("calibration") is not None:
            calibration = _calibration(r.sub("calibration"))

        evals = []
        for i, e in enumerate(r.get("evals", list, [])):
            er = _Reader(e, f"evals[{i}]")
            er.check_keys({f.name for f in dataclasses.fields(EvalResult)})
            cpt = er.get("cpt", dict, {})
            for k, v in cpt.items():
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise CardError(f"evals[{i}].cpt[{k!r}]: expected a number, got {v!r}")
            evals.append(
                EvalResult(
                    benchmark=er.get("benchmark", str),
                    apgr=er.get("apgr", float),
                    cpt={k: float(v) for k, v in cpt.items()},
                    command=er.get("command", str, ""),
                    notes=er.get("notes", str, ""),
                    extra=er.get("extra", dict, {}),
                )
            )

        return cls(
            name=r.get("name", str),
            version=r.get("version", str),
            architecture=r.get("architecture", str),
            config=r.get("config", dict),
            models=models,
            default_strong=strong,
            default_weak=weak,
            checkpoint=checkpoint,
            description=r.get("description", str, ""),
            encoder=encoder,
            tokenizer=r.get("tokenizer", dict, {}),
            data=data,
            calibration=calibration,
            evals=evals,
            license=r.get("license", str, ""),
            commit=r.get("commit", str, ""),
            created=r.get("created", str, ""),
            format=fmt,
            plugin=_plugin(r),
        )

    # ---- Architecture config ------------------------------------------------------------------

    def arch_config(self, config_cls: type) -> Any:
        """Rebuild the architecture's config dataclass from ``self.config``.

        Example:
            >>> import tempfile
            >>> from routellm_jax.models.registry import get_architecture
            >>> from routellm_jax.zoo.cache import pull
            >>> with tempfile.TemporaryDirectory() as cache:  # the bundled entry, unpacked
            ...     entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache)
            ...     card = ModelCard.load(entry_dir / CARD_FILE)
            >>> config = card.arch_config(get_architecture("mf").config_cls)
            >>> type(config).__name__, config.dim
            ('MFConfig', 128)
        """
        try:
            return config_from_json(config_cls, self.config, "config")
        except CardError as err:
            raise CardError(f"card {self.name}: {err}") from None


def _plugin(r: _Reader) -> dict[str, str]:
    plugin = r.get("plugin", dict, {})
    known = {"module", "distribution", "version"}
    _Reader(plugin, "plugin").check_keys(known)
    for key, value in plugin.items():
        if not isinstance(value, str):
            raise CardError(f"plugin.{key}: expected str, got {value!r}")
    return dict(plugin)


def _check_inside(path: str, where: str) -> str:
    """``path`` if it stays inside the entry folder: relative, no ``..``, no backslash."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path or ".." in parts:
        raise CardError(f"{where}: must be a relative path inside the entry: {path!r}")
    return path


def _calibration(r: _Reader) -> Calibration:
    r.check_keys({f.name for f in dataclasses.fields(Calibration)})
    shares = r.get("shares", list)
    thresholds = r.get("thresholds", list)
    if len(shares) != len(thresholds) or not shares:
        raise CardError(
            f"calibration: {len(shares)} shares but {len(thresholds)} thresholds "
            "(one threshold per share, at least one)"
        )
    for key, values in (("shares", shares), ("thresholds", thresholds)):
        for i, v in enumerate(values):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise CardError(f"calibration.{key}[{i}]: expected a finite number, got {v!r}")
    for i in range(1, len(shares)):
        if not shares[i] > shares[i - 1]:
            raise CardError(f"calibration.shares[{i}]: shares must increase")
        if thresholds[i] > thresholds[i - 1]:
            raise CardError(
                f"calibration.thresholds[{i}]: a larger strong share needs a threshold no higher "
                f"than the previous one ({thresholds[i]} > {thresholds[i - 1]})"
            )
    return Calibration(
        reference=r.get("reference", str),
        n_prompts=r.get("n_prompts", int),
        strong=r.get("strong", str),
        weak=r.get("weak", str),
        shares=[float(s) for s in shares],
        thresholds=[float(t) for t in thresholds],
        min_win_rate=r.get("min_win_rate", float),
        max_win_rate=r.get("max_win_rate", float),
    )


def _jsonable(value: Any) -> Any:
    """Dataclass dicts -> JSON values (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if hasattr(value, "item") and callable(value.item):  # numpy / jax scalar
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a model card")


def config_to_json(config: Any) -> dict[str, Any]:
    """An architecture config dataclass -> a JSON object (nested dataclasses become objects).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class ToyConfig:
        ...     dim: int = 8
        ...     models: tuple[str, ...] = ("a", "b")
        >>> config_to_json(ToyConfig())
        {'dim': 8, 'models': ['a', 'b']}
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a config dataclass instance, got {type(config).__name__}")
    return _jsonable(dataclasses.asdict(config))


def _from_type(tp: Any, value: Any, where: str) -> Any:
    """Coerce a JSON value to the annotated field type where it matters (tuples, dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _from_type(args[0], value, where) if len(args) == 1 else _to_tuples(value)
    if dataclasses.is_dataclass(tp):
        return config_from_json(tp, value, where)
    if origin is tuple or tp is tuple:
        if not isinstance(value, list):
            raise CardError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_type(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) == len(value):
            return tuple(
                _from_type(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
        return _to_tuples(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return _to_tuples(value)


def _to_tuples(value: Any) -> Any:
    # Frozen configs are hashed (jit static arguments): lists become tuples.
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def config_from_json(config_cls: type, obj: Any, where: str = "config") -> Any:
    """Rebuild a config dataclass from JSON; unknown or missing keys are named in the error.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class ToyConfig:
        ...     dim: int = 8
        ...     models: tuple[str, ...] = ("a", "b")
        >>> config_from_json(ToyConfig, {"dim": 16, "models": ["x", "y"]})
        ToyConfig(dim=16, models=('x', 'y'))
        >>> config_from_json(ToyConfig, {"dimm": 16})
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.card.CardError: config: unknown key(s) ['dimm'] for ToyConfig; known: ['dim', 'models']
    """
    if not isinstance(obj, dict):
        raise CardError(f"{where}: expected an object, got {obj!r}")
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # unresolvable forward references: fall back to tuple conversion only
        hints = {}
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise CardError(
            f"{where}: unknown key(s) {unknown} for {config_cls.__name__}; known: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in obj.items():
        kwargs[name] = _from_type(hints.get(name, Any), value, f"{where}.{name}")
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise CardError(f"{where}: missing key(s) {missing} for {config_cls.__name__}")
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise CardError(f"{where}: {config_cls.__name__} rejected the values: {err}") from err


def threshold_at_share(win_rates: Any, share: float) -> float:
    """The threshold sending ``share`` of these win rates to the strong model.

    Route strong when ``win_rate >= threshold``: the threshold is the k-th largest win rate with
    ``k = round(share * n)`` (at least one prompt), so exactly k prompts go strong, ties aside.

    Example:
        >>> threshold_at_share([0.1, 0.2, 0.3, 0.4], 0.5)
        0.3
    """

    values = np.sort(np.asarray(win_rates, dtype=np.float64).ravel())[::-1]
    if values.size == 0:
        raise ValueError("cannot calibrate on zero prompts")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"strong share must lie in [0, 1], got {share}")
    if share == 0.0:
        # Nothing reaches it; the next float32 up, so float32 and float64 comparisons agree.
        return float(np.nextafter(np.float32(values[0]), np.float32(np.inf)))
    k = min(values.size, max(1, int(round(share * values.size))))
    return float(values[k - 1])


def calibration_from_win_rates(
    win_rates: Any,
    *,
    strong: str,
    weak: str,
    reference: str,
    shares: tuple[float, ...] = CALIBRATION_SHARES,
) -> Calibration:
    """The calibration table (one threshold per strong share) of a reference set's win rates.

    Example:
        >>> c = calibration_from_win_rates([0.2, 0.9], strong="s", weak="w", reference="2 prompts")
        >>> c.thresholds[0], c.thresholds[-1]
        (0.9, 0.2)
    """

    values = np.asarray(win_rates, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"calibration needs finite win rates, got {values.size} values")
    return Calibration(
        reference=reference,
        n_prompts=int(values.size),
        strong=strong,
        weak=weak,
        shares=[float(s) for s in shares],
        thresholds=[threshold_at_share(values, s) for s in shares],
        min_win_rate=float(values.min()),
        max_win_rate=float(values.max()),
    )
