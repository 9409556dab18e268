"""``routellm-jax eval --benchmark my_outcomes.csv``: a user's own CSV. A typo cell, nan/inf
scores, an empty file, prompts that read as NA, flag values and outputs: each is said in one line
naming the file (and row and column), never silently changes the benchmark."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from routellm_jax.cli import main
from routellm_jax.data.sources._common import read_records
from routellm_jax.eval.benchmarks import DroppedScoresWarning, load_benchmark, read_outcome_file

# Prompts every pandas reader takes for missing values unless told otherwise.
NA_PROMPTS = ["NA", "None", "null", "nan", "N/A", "NULL"]


def _wide(path: Path, rows: list[tuple[str, str, str]], extra: str = "") -> Path:
    lines = ["prompt,big,small" + (",note" if extra else "")]
    lines += [f"{p},{s},{w}" + (f",{extra}" if extra else "") for p, s, w in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(n: int = 8) -> list[tuple[str, str, str]]:
    return [(f"q{i}", str(i % 2), str(int(i % 4 == 0))) for i in range(n)]


def _eval(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["eval", *argv, "--router", "oracle", "--random-seeds", "1", "--json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_typo_cell_in_a_model_column_is_named(tmp_path, capsys) -> None:
    rows = _rows()
    rows[3] = ("q3", "1", "O")  # a letter O for a zero
    path = _wide(tmp_path / "mine.csv", rows)
    with pytest.raises(ValueError, match=r"mine.csv: row 4 \(after the header\), column 'small'"):
        load_benchmark(str(path), strong="big", weak="small")
    code, out, err = _eval(["--benchmark", str(path), "--strong", "big", "--weak", "small"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"routellm-jax eval: error: {path}: row 4 (after the header), column 'small' (the weak "
        "model): not a score: 'O' (score cells are numbers, True/False, or empty for not scored)"
    )


def test_text_column_that_is_not_a_model_still_works(tmp_path) -> None:
    # A column of text (RouterBench's oracle_model_to_route_to) is not a model, and no error
    # unless it is named as one.
    path = _wide(tmp_path / "mine.csv", _rows(), extra="some text")
    bench = load_benchmark(str(path), strong="big", weak="small")
    assert len(bench) == 8
    with pytest.raises(ValueError, match=r"row 1 \(after the header\), column 'note'"):
        load_benchmark(str(path), strong="big", weak="note")


def test_nan_and_inf_scores_are_counted_and_warned(tmp_path, capsys) -> None:
    rows = _rows()
    rows[2] = ("q2", "nan", "0")
    rows[5] = ("q5", "1", "inf")
    rows[6] = ("q6", "", "1")  # empty: not scored, as documented; not counted
    path = _wide(tmp_path / "scores.csv", rows)
    with pytest.warns(DroppedScoresWarning, match=r"scores.csv: 2 nan/inf score cell\(s\)"):
        bench = load_benchmark(str(path), strong="big", weak="small")
    assert len(bench) == 5 and bench.metadata["non_finite_scores_dropped"] == 2
    code, out, err = _eval(["--benchmark", str(path), "--strong", "big", "--weak", "small"], capsys)
    assert code == 0 and json.loads(out)["benchmark"]["non_finite_scores_dropped"] == 2
    warning = [line for line in err.splitlines() if "warning" in line]
    assert warning == [
        f"routellm-jax eval: warning: {path}: 2 nan/inf score cell(s) of the strong/weak columns "
        "were dropped as not scored (first: row 3 after the header, column 'big': 'nan')"
    ]


def test_all_nan_column_warns_before_the_error(tmp_path, capsys) -> None:
    path = _wide(tmp_path / "scores.csv", [(f"q{i}", "1", "nan") for i in range(3)])
    code, _, err = _eval(["--benchmark", str(path), "--strong", "big", "--weak", "small"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0].startswith(f"routellm-jax eval: warning: {path}: 3 nan/inf score cell(s)")
    assert lines[1].startswith("routellm-jax eval: error: weak model 'small' not in the outcome")


def test_clean_file_has_no_warning(tmp_path) -> None:
    path = _wide(tmp_path / "clean.csv", _rows())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bench = load_benchmark(str(path), strong="big", weak="small")
    assert "non_finite_scores_dropped" not in bench.metadata


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file (expected a CSV header line)"),
        (b"prompt,big,small\n", "no data rows after the header"),
        (b"prompt,big,small\ncaf\xe9,1,0\n", "not valid UTF-8"),
        (b"question,big,small\nq,1,0\n", "no 'prompt' column"),
        (b"prompt,notes\nq,hello\n", "no model columns"),
    ],
)
def test_unusable_csv_errors_name_the_file(tmp_path, capsys, content, expected) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {expected}")):
        read_outcome_file(path)
    code, _, err = _eval(["--benchmark", str(path), "--strong", "big", "--weak", "small"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"routellm-jax eval: error: {path}: {expected}")


def test_na_prompts_stay_text_in_wide_and_long_csv(tmp_path) -> None:
    wide = _wide(tmp_path / "wide.csv", [(p, "1", "0") for p in NA_PROMPTS])
    long = tmp_path / "long.csv"
    long.write_text(
        "prompt,model,score\n" + "".join(f"{p},big,1\n{p},small,0\n" for p in NA_PROMPTS)
    )
    for path in (wide, long):
        bench = load_benchmark(str(path), strong="big", weak="small")
        assert list(bench.prompts) == NA_PROMPTS, path


def test_na_prompts_stay_text_in_the_source_readers(tmp_path) -> None:
    # The training-data readers (Arena, RouterBench, FastChat...) load CSVs through read_records.
    path = tmp_path / "records.csv"
    path.write_text(
        "prompt,model,score,correct\n"
        + "".join(
            f"{p},{m},{i % 3},{i % 2 == 0}\n"
            for i, (p, m) in enumerate(zip(NA_PROMPTS, NA_PROMPTS))
        )
        + "last,gpt-4,NA,\n"
    )
    df = read_records(path)
    assert df["prompt"].tolist() == [*NA_PROMPTS, "last"]
    assert df["model"].tolist()[:-1] == NA_PROMPTS
    # numeric and boolean columns keep pandas' reading: NA there is a missing value
    assert df["score"].isna().tolist() == [False] * len(NA_PROMPTS) + [True]
    assert df["correct"].tolist()[:2] == [True, False] and df["correct"].isna().tolist()[-1]
    only = tmp_path / "only.csv"  # a column whose every cell pandas would call NA
    only.write_text("prompt,n\nNA,1\nnull,2\n")
    assert read_records(only)["prompt"].tolist() == ["NA", "null"]


def test_eval_flag_values_and_output_folder(tmp_path, capsys) -> None:
    path = _wide(tmp_path / "mine.csv", _rows())
    base = ["--benchmark", str(path), "--strong", "big", "--weak", "small"]
    for flag, value in (
        ("--random-seeds", "0"),
        ("--input-tokens", "nan"),
        ("--num-thresholds", "-1"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["eval", *base, flag, value])
        assert exc.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = _eval([*base, "--out", str(blocker / "results")], capsys)
    assert code == 2 and out == "" and err.startswith(f"routellm-jax eval: error: {blocker}")


def test_equal_quality_pair_is_a_clean_error(tmp_path, capsys) -> None:
    path = _wide(tmp_path / "tie.csv", [(f"q{i}", "1", "1") for i in range(4)])
    code, _, err = _eval(["--benchmark", str(path), "--strong", "big", "--weak", "small"], capsys)
    last = err.strip().splitlines()[-1]  # after a note that these models have no prices
    assert code == 2 and last.startswith(f"routellm-jax eval: error: {path}: 'big' and 'small'")
    assert "PGR" in last and "Traceback" not in err
