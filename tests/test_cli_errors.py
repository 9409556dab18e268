"""User errors on the command line (``route``, ``calibrate``, the top-level dispatch): one line
``routellm-jax CMD: error: ...`` naming the file and line or the flag, exit code 2, and no work
done or output lost; genuine bugs keep their traceback. A fake router stands in for ``load`` so
these stay fast; one test uses a real (tiny, hashing-featurizer) router for the errors it raises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import pytest

from routellm_jax import api
from routellm_jax.cli import main
from routellm_jax.models import registry

STRONG, WEAK = "big-model", "small-model"


class FakeRouter:
    """What route/calibrate use of a Router: decide, calibrate, calibration, name, stats."""

    name = "fake"
    models = (STRONG, WEAK)
    stats: dict = {}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def _check(self, strong, weak) -> tuple[str, str]:
        for m in (strong, weak):
            if m is not None and m not in self.models:
                raise api.RouterError(f"router 'fake': model {m!r} is not in its model table")
        return strong or STRONG, weak or WEAK

    def decide(self, prompts, *, threshold=None, strong_share=None, strong=None, weak=None):
        s, w = self._check(strong, weak)
        self.calls.append(list(prompts))
        t = 0.5 if threshold is None else threshold
        rates = [0.25 + 0.5 * (i % 2) for i in range(len(prompts))]
        return [
            {"win_rate": r, "strong": r >= t, "model": s if r >= t else w, "threshold": t}
            for r in rates
        ]

    def calibrate(self, prompts, share, *, strong=None, weak=None, reference=None):
        self._check(strong, weak)
        self.calls.append(list(prompts))
        return 0.5

    def calibration(self, strong=None, weak=None):
        from routellm_jax.zoo.card import calibration_from_win_rates

        s, w = self._check(strong, weak)
        return calibration_from_win_rates([0.1, 0.9], strong=s, weak=w, reference="test")


@pytest.fixture()
def fake(monkeypatch) -> FakeRouter:
    router = FakeRouter()
    monkeypatch.setattr(api, "load", lambda *a, **k: router)
    return router


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"routellm-jax {command}: error: "), err
    return lines[0]


def test_unpaired_surrogate_in_input_names_file_and_line(fake, tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    # JSON allows the escape; the decoded string is not valid Unicode text.
    src.write_text('{"prompt": "fine"}\n{"prompt": "hi \\ud800"}\n', encoding="utf-8")
    code, out, err = _run(["route", "--input", str(src)], capsys)
    line = _one_error_line(err, "route")
    assert code == 2 and out == "" and fake.calls == []
    assert f"{src}:2: field 'prompt': not valid Unicode text" in line


def test_prompt_argument_with_surrogate_is_named(fake, capsys) -> None:
    # A prompt argument holds a surrogate when argv had bytes that are not UTF-8.
    code, _, err = _run(["route", "fine", "bad \udcff"], capsys)
    assert code == 2 and "prompt argument 2: not valid Unicode" in _one_error_line(err, "route")
    assert fake.calls == []


def test_invalid_utf8_names_file_and_line(fake, tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"prompt": "fine"}\n{"prompt": "caf\xe9"}\n')
    code, _, err = _run(["route", "--input", str(src)], capsys)
    assert code == 2 and f"{src}:2: not valid UTF-8" in _one_error_line(err, "route")
    code, _, err = _run(["calibrate", "--prompts", str(src), "--strong-share", "0.3"], capsys)
    assert code == 2 and f"{src}:2: not valid UTF-8" in _one_error_line(err, "calibrate")


def test_byte_order_mark_is_not_part_of_the_first_prompt(fake, tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"prompt": "first"}\n')
    code, out, _ = _run(["route", "--input", str(src)], capsys)
    assert code == 0 and json.loads(out)["prompt"] == "first"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["route", "--input", "{tmp}/absent.jsonl"], "absent.jsonl: no such prompt file"),
        (["route", "--input", "{tmp}"], "cannot read"),
        (["route", "--input", "{tmp}/bad.jsonl"], "bad.jsonl:1: not valid JSON"),
        (["route", "x", "--strong", "nope"], "model 'nope' is not in its model table"),
        (["route"], "give prompts as arguments or --input FILE"),
        (["calibrate", "--prompts", "{tmp}/empty.txt", "--strong-share", "0.3"], "no prompts"),
        (
            ["calibrate", "--prompts", "{tmp}/absent.txt", "--strong-share", "0.3"],
            "absent.txt: no such prompt file",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(fake, tmp_path, capsys, argv, expected) -> None:
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "empty.txt").write_text("\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == "" and expected in _one_error_line(err, argv[0])


def test_verbose_shows_the_traceback_too(fake, tmp_path, capsys) -> None:
    code, _, err = _run(["-v", "route", "--input", str(tmp_path / "absent.jsonl")], capsys)
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("routellm-jax route: error: ")


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(api, "load", broken)
    with pytest.raises(KeyError, match="internal"):
        main(["route", "hello"])


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["route", "x", "--threshold", "nan"], "--threshold"),
        (["route", "x", "--threshold", "inf"], "--threshold"),
        (["route", "x", "--threshold", "1.5"], "--threshold"),
        (["route", "x", "--threshold", "-0.1"], "--threshold"),
        (["route", "x", "--threshold", "half"], "--threshold"),
        (["route", "x", "--batch-size", "0"], "--batch-size"),
        (["route", "x", "--batch-size", "-4"], "--batch-size"),
        (["route", "x", "--strong-share", "0"], "--strong-share"),
        (["route", "x", "--strong-share", "1"], "--strong-share"),
        (["route", "x", "--strong-share", "nan"], "--strong-share"),
        (["calibrate", "--prompts", "p.txt", "--strong-share", "1.5"], "--strong-share"),
        (["calibrate", "--prompts", "p.txt", "--strong-share", "0.3", "--batch-size", "0"], "--b"),
    ],
)
def test_bad_flag_values_are_usage_errors(fake, capsys, argv, flag) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"routellm-jax {argv[0]}: error: argument {flag}" in err
    assert fake.calls == []


def test_valid_flag_edges_are_accepted(fake, capsys) -> None:
    for argv in (["--threshold", "0"], ["--threshold", "1"], ["--strong-share", "0.01"]):
        code, _, _ = _run(["route", "x", "--batch-size", "1", *argv], capsys)
        assert code == 0


def test_unwritable_output_fails_before_any_work(fake, tmp_path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a prompt\n")
    for dest in (prompts / "out.jsonl", tmp_path):  # under a file; a folder itself
        code, _, err = _run(["route", "x", "--output", str(dest)], capsys)
        assert code == 2 and str(dest) in _one_error_line(err, "route")
        code, _, err = _run(
            [
                "calibrate",
                "--prompts",
                str(prompts),
                "--strong-share",
                "0.5",
                "--output",
                str(dest),
            ],
            capsys,
        )
        assert code == 2 and str(dest) in _one_error_line(err, "calibrate")
    assert fake.calls == []


def test_output_folder_is_created_and_file_is_complete(fake, tmp_path, capsys) -> None:
    dest = tmp_path / "new" / "folder" / "out.jsonl"
    code, _, _ = _run(["route", "a", "b", "--output", str(dest)], capsys)
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert code == 0 and [r["prompt"] for r in rows] == ["a", "b"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # not a temporary file's 0600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.jsonl"]
    table = tmp_path / "t" / "table.json"
    code, out, _ = _run(
        ["calibrate", "--prompts", str(dest), "--strong-share", "0.5", "--output", str(table)],
        capsys,
    )
    assert code == 0 and json.loads(out)["threshold"] == 0.5
    assert json.loads(table.read_text())["strong"] == STRONG
    # A link is followed (the link stays), a device is written to (not replaced).
    target = tmp_path / "target.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert _run(["route", "a", "--output", str(link)], capsys)[0] == 0
    assert link.is_symlink() and json.loads(target.read_text())["prompt"] == "a"
    assert _run(["route", "a", "--output", os.devnull], capsys)[0] == 0


def test_a_failure_while_writing_keeps_the_old_output(fake, tmp_path, capsys, monkeypatch) -> None:
    dest = tmp_path / "out.jsonl"
    dest.write_text("previous results\n")
    decide = fake.decide

    def half_bad(prompts, **kw):
        rows = decide(prompts, **kw)
        rows[1]["win_rate"] = object()  # not JSON: fails after the first row is written
        return rows

    monkeypatch.setattr(fake, "decide", half_bad)
    with pytest.raises(TypeError):  # a bug, so a traceback; but the old file is intact
        main(["route", "a", "b", "--output", str(dest)])
    assert dest.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary file left
    code, _, _ = _run(["route", "a", "--output", str(dest), "--strong", "nope"], capsys)
    assert code == 2 and dest.read_text() == "previous results\n"


@pytest.mark.parametrize("key", ["model", "win_rate", "strong", "threshold"])
def test_input_row_with_a_decision_key_is_refused(fake, tmp_path, capsys, key) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": "x", key: 1}) + "\n")
    code, _, err = _run(["route", "--input", str(src)], capsys)
    line = _one_error_line(err, "route")
    assert code == 2 and f"{src}:2: the input object already has ['{key}']" in line
    assert fake.calls == []
    # calibrate ignores extra keys: nothing of the row is written back.
    code, _, _ = _run(["calibrate", "--prompts", str(src), "--strong-share", "0.5"], capsys)
    assert code == 0


def test_real_router_errors_are_clean(tmp_path, capsys, monkeypatch) -> None:
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(models=(STRONG, WEAK), featurizer="hashing:8", text_dim=8, dim=4)
    router = api.Router.from_params(
        "mf", cfg, arch.init(jax.random.key(0), cfg), strong=STRONG, weak=WEAK
    )
    monkeypatch.setattr(api, "load", lambda *a, **k: router)
    code, _, err = _run(["route", "hi", "--threshold", "0.5", "--weak", "nope"], capsys)
    assert code == 2 and "weak model 'nope' is not in its model table" in err
    code, _, err = _run(["route", "hi"], capsys)  # no calibration table for a share
    assert code == 2 and "has no calibration table" in _one_error_line(err, "route")
    monkeypatch.undo()
    manifest = Path(__file__).resolve().parent.parent / "model_zoo" / "manifest.json"
    code, _, err = _run(
        ["route", "hi", "--router", "no-such-router", "--manifest", str(manifest)], capsys
    )
    assert code == 2 and "'no-such-router' is not in the manifest" in _one_error_line(err, "route")
