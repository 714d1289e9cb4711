"""The text the commands print for people: ``pareto``, ``compare`` and ``recommend`` tables
fitted to an 80- and a 120-column terminal (no cell cut to "…", no row wrapped, whole columns
left out and named), ``--wide`` with every column, piped output in its old shape for
scripts; ``evaluate``'s one-screen summary with units and the step-time breakdown, and its
``--wide`` dump of every key.

A terminal is simulated the way a user's shell makes one: ``COLUMNS`` set and stdout a tty
(``isatty`` patched on pytest's capture), so the command's own width detection runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from cli_helpers import run as cli
from cli_helpers import run_json

from codesign.cli import main
from codesign.cli.format import (
    Column,
    _print_front,
    fit_columns,
    num,
    recommend_table,
    seconds,
    table_width,
    unit_of,
)
from codesign.cli.model import SUMMARY_WIDTH, evaluate_summary

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRAIN = ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips", "1024")
SERVE = ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips", "16",
         "--input-len", "2048", "--output-len", "256")


@pytest.fixture(scope="module")
def qs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-trial quickstart run with the H100 as baseline (so the front has "vs" columns)."""
    folder = tmp_path_factory.mktemp("out")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    space = (REPO / "search_spaces" / "quickstart.toml").as_posix()
    for old, new in (('name = "quickstart"', 'name = "qso"'),
                     ('"../search_spaces/quickstart.toml"', f'"{space}"'),
                     ("population = 32", "population = 16"),
                     ("\n[workload]", '\nbaselines = ["h100-sxm"]\n\n[workload]')):
        assert old in text, f"test bug: {old!r} not in quickstart.toml"
        text = text.replace(old, new, 1)
    (folder / "exp.toml").write_text(text, encoding="utf-8")
    assert main(["search", str(folder / "exp.toml"), "--trials", "48", "--out",
                 str(folder / "run"), "--no-progress"]) == 0
    return folder / "run"


def terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """Make stdout (pytest's capture) a ``width``-column terminal for the command."""
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)


def text_of(out: str) -> list[str]:
    """Printed lines without colour codes or trailing blanks."""
    return [ANSI.sub("", line).rstrip() for line in out.splitlines()]


def table_rows(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the header lines, the body lines) of the first table: the body runs from the rule
    under the header to the first line that does not start with a number."""
    rule = next(i for i, line in enumerate(lines) if line.lstrip().startswith("─"))
    body = []
    for line in lines[rule + 1:]:
        if not re.match(r"^\s*\d+\s", line):
            break
        body.append(line)
    head_start = max((i for i in range(rule) if not lines[i].strip()), default=-1) + 1
    return lines[head_start:rule], body


def parse_num(text: str) -> float:
    """Inverse of :func:`num` for numbers (``10.31M``, ``1,024``, ``0.5523``)."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    text = text.replace(",", "")
    if text and text[-1] in scale:
        return float(text[:-1]) * scale[text[-1]]
    return float(text)


def assert_fits(lines: list[str], width: int) -> None:
    from rich.cells import cell_len

    for line in lines:
        assert cell_len(line) <= width, (width, line)
        assert "…" not in line, line


# ----------------------------------------------------------------------------- numbers


def test_numbers_are_compact_and_keep_four_significant_digits() -> None:
    assert num(10_308_077.34) == "10.31M" and num(9.547e9) == "9.547G"
    assert num(12_345.6) == "12.35k" and num(999_999.7) == "1M"  # not "1000k"
    assert num(1024) == "1,024" and num(16384.0) == "16,384" and num(1203.95) == "1,204"
    assert num(690.519) == "690.5" and num(0.000123) == "0.000123" and num(2.0) == "2"
    assert num(float("nan")) == "n/a" and num(None) == "" and num("HBM3e") == "HBM3e"
    assert num(True) == "yes" and num(-25_000_000) == "-25M"
    for v in (10_308_077.34, 4.97e6, 0.01544, 806.9, 123_456.0, 7.2e13):
        assert parse_num(num(v)) == pytest.approx(v, rel=5e-4), v
    assert seconds(3.402139) == "3.402 s" and seconds(0.1124) == "112.4 ms"
    assert seconds(6.974e-4) == "697.4 µs" and seconds(0.0) == "0 s"


def test_units_of_metrics_parameters_and_answer_keys() -> None:
    assert unit_of("tokens_per_s") == "tokens/s" and unit_of("silicon_mm2") == "mm²"
    assert unit_of("tdp_w") == "W" and unit_of("clock_ghz") == "GHz"
    assert unit_of("cost_per_mtoken_usd") == "USD/1e6 tokens"
    assert unit_of("scaleup_gbps") == "GB/s" and unit_of("scaleout_gbps") == "Gbit/s"
    assert unit_of("compute", "breakdown_s") == "s" and unit_of("hbm", "power_breakdown_w") == "W"
    assert unit_of("tp", "mapping") == "" and unit_of("compute_units") == ""


def test_fitting_keeps_columns_in_priority_order_and_drops_whole_ones() -> None:
    cols = [Column("trial", ["1", "22"]), Column("a_long_name", ["1.5", "2.25"], "W"),
            Column("wide_column", ["x" * 40, "y"]), Column("b", ["3", "4"], "s")]
    kept, left = fit_columns(cols, 30)
    assert [c.title for c in kept] == ["trial", "a_long_name", "b"]
    assert [c.title for c in left] == ["wide_column"]
    assert table_width(kept) <= 30
    kept, left = fit_columns(cols, 200)
    assert kept == cols and not left


# ----------------------------------------------------------------------------- pareto


@pytest.mark.parametrize("width", [80, 120])
def test_pareto_fits_the_terminal(qs: Path, width: int, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    doc = run_json(capsys, "pareto", str(qs), "--format", "json")
    terminal(monkeypatch, width)
    code, out, err = cli(capsys, "pareto", str(qs))
    assert code == 0, err
    lines = text_of(out)
    assert_fits(lines, width)
    head, body = table_rows(lines)
    # one line per design, none wrapped onto a second line, every trial once
    assert len(body) == len(doc["front"]) > 0
    assert [int(line.split()[0]) for line in body] == [r["trial"] for r in doc["front"]]
    cells = [line.split() for line in body]
    # the objectives come right after the trial, compact and exact to 4 digits, with units
    header = " ".join(head)
    for i, (metric, _) in enumerate(doc["objectives"]):
        assert unit_of(metric) in header, (metric, head)
        for row, r in zip(cells, doc["front"], strict=True):
            assert parse_num(row[1 + i]) == pytest.approx(r[f"value_{metric}"], rel=5e-4)
    # whole columns left out are named in one line below the table, with the way to see all
    note = [line for line in lines if "left out" in line]
    assert len(note) == 1 and "--wide" in note[0] and "--format csv" in note[0], lines[-4:]
    assert lines.index(note[0]) > lines.index(body[-1])


def test_pareto_shows_more_columns_in_a_wider_terminal(
        qs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {}
    for width in (80, 120):
        terminal(monkeypatch, width)
        _, body = table_rows(text_of(cli(capsys, "pareto", str(qs))[1]))
        counts[width] = len(body[0].split())
    assert counts[120] > counts[80] >= 5  # trial, 3 objectives, at least one parameter


def test_pareto_wide_shows_every_column(qs: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import codesign

    run = codesign.load_run(qs)
    terminal(monkeypatch, 80)
    code, out, err = cli(capsys, "pareto", str(qs), "--wide")
    assert code == 0, err
    lines = text_of(out)
    assert not any("left out" in line for line in lines)
    head, body = table_rows(lines)
    header = " ".join(head)
    for name in [p.name for p in run.experiment.space.params] + ["best mapping", "mfu",
                                                                 "n_chips", "vs h100-sxm"]:
        assert name in header, name
    assert len(body) == len(run.pareto) and max(len(line) for line in body) > 80
    assert "…" not in out


def test_pareto_piped_keeps_every_column_and_full_numbers(
        qs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scripts read the piped table: every column, ``%.4g`` numbers, no note, whatever
    ``COLUMNS`` says."""
    doc = run_json(capsys, "pareto", str(qs), "--format", "json")
    code, out, err = cli(capsys, "pareto", str(qs))
    assert code == 0, err
    lines = out.splitlines()
    head, body = table_rows(lines)
    header = " ".join(head)
    assert "best mapping" in header and "vs h100-sxm" in header and "mfu" in header
    assert not any("left out" in line for line in lines)
    assert len(body) == len(doc["front"])
    first = doc["front"][0]
    metric = doc["objectives"][0][0]
    assert body[0].split()[1] == f"{first[f'value_{metric}']:.4g}"
    assert "improvement: > 1 = better" in out


def test_front_table_at_a_given_width(qs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``_print_front(width=...)``: the fitted table without a terminal (what the library's
    callers and these tests use)."""
    import codesign

    run = codesign.load_run(qs)
    rows = run.pareto.to_dict("records")
    for width in (80, 120):
        _print_front("qso", run.experiment, rows, ["h100-sxm as projected"], width=width)
        lines = text_of(capsys.readouterr().out)
        assert_fits(lines, width)
        assert len(table_rows(lines)[1]) == len(rows)


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_summary_is_one_screen_with_units_and_the_step_breakdown(
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, *TRAIN, "--json")
    code, out, err = cli(capsys, *TRAIN)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) <= 40, out
    assert all(len(line) <= SUMMARY_WIDTH for line in lines), out
    text = out
    for needle in ("mm² per die", "TDP 700 W", "28,000 USD", "1,024 chips", "scale-up domain 8",
                   "rail-optimized", "Llama-3 70B, training", "tokens/s per chip", "MFU ",
                   "step time", "chip power", "tokens/J", "J/token", "USD per 1e6 tokens",
                   "GB per chip of 80 GB HBM", "cooling", "assumed", "goodput"):
        assert needle in text, needle
    m = doc["mapping"]
    assert f"tp{m['tp']} pp{m['pp']} dp{m['dp']}" in text
    assert f"MFU {num(100 * doc['mfu'])} %" in text
    step = doc["step_time_s"]
    assert f"step time     {seconds(step)}" in text
    parts = {"compute": "compute", "pipeline_bubble": "pipeline bubble",
             "tp_cp_ep_comm": "tp/cp/ep communication", "optimizer": "optimizer step",
             "host_offload_exposed": "host offload", "dp_comm_exposed": "data-parallel"}
    for key, label in parts.items():
        value = doc["breakdown_s"][key]
        found = [line for line in lines if line.strip().startswith(label)]
        if value:
            assert len(found) == 1, (key, found)
            assert seconds(value) in found[0]
            assert found[0].endswith(f"{100 * value / step:5.1f} %"), found[0]
        else:
            assert not found, (key, found)  # only the non-zero parts
    # each part line: a label, a number with its unit, a share of the step or the chip power
    unit_line = re.compile(r"^ {2,}\S.*\s[-\d.,]+ (s|ms|µs|W)\s+[\d.]+ %$")
    for key, w in doc["power_breakdown_w"].items():
        line = next(x for x in lines if x.strip().startswith(key.replace("_", " ")))
        assert unit_line.match(line) and num(w) in line, line
    assert sum(1 for line in lines if unit_line.match(line)) >= 8


def test_evaluate_summary_of_a_serving_answer(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, *SERVE, "--json")
    code, out, err = cli(capsys, *SERVE)
    assert code == 0, err
    assert len(out.splitlines()) <= 40
    assert f"TTFT {seconds(doc['ttft_s'])}, ITL {seconds(doc['itl_s'])}" in out
    assert "serving" in out and "(output tokens)" in out and "step time" not in out
    assert "goodput" not in out and "MFU" not in out


def test_evaluate_summary_lists_assumed_values_with_units() -> None:
    out = {"chip": "x", "die_area_mm2": None, "n_compute_dies": None, "tdp_w": 500.0,
           "chip_cost_usd": 9000.0, "n_chips": 8, "model": "M", "workload": "infer",
           "mapping": {"tp": 8, "pp": 1, "dp": 1, "cp": 1, "ep": 1, "vpp": 1,
                       "micro_batch": 4, "recompute": None, "zero": None},
           "platform": {}, "ttft_s": 0.5, "itl_s": 0.02, "tokens_per_s": 2000.0,
           "tokens_per_s_per_chip": 250.0, "memory_gb_per_chip": 50.0, "chip_power_w": 400.0,
           "cluster_power_w": 6000.0, "tokens_per_joule": 0.3, "cost_per_mtoken_usd": 1.5,
           "cooling": {"kind": None, "rack_power_kw": 5.0}, "feasible": True,
           "assumed": {"chip.scaleout_gbps": {"value": 100.0, "reason": "usual NIC"}}}
    text = "\n".join(evaluate_summary(out, hbm_gb=64.0))
    assert "chip.scaleout_gbps = 100 Gbit/s: usual NIC" in text
    assert "die area n/a" in text and "50 GB per chip of 64 GB HBM (78 %)" in text


def test_evaluate_wide_prints_every_key_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, *TRAIN, "--json")
    code, out, err = cli(capsys, *TRAIN, "--wide")
    assert code == 0, err

    def keys(d: dict) -> list[str]:
        return [k for key, v in d.items() for k in [key, *(keys(v) if isinstance(v, dict)
                                                          else [])]]

    for key in keys(doc):
        assert re.search(rf"^ *{re.escape(key)}:", out, re.M), key
    assert len(out.splitlines()) > 60
    for key, unit in (("tdp_w", "W"), ("step_time_s", "s"), ("tokens_per_s", "tokens/s"),
                      ("cluster_power_w", "W"), ("memory_gb_per_chip", "GB")):
        assert re.search(rf"^ *{key}: {re.escape(str(doc[key]))} {re.escape(unit)}$", out,
                         re.M), key
    assert re.search(r"^ +compute: [\d.e-]+ s$", out, re.M)  # breakdown_s, in seconds


def test_evaluate_infeasible_answer_is_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b", "--n-chips", "16",
            "--global-batch", "64", "--seq-len", "8192", "--offload", "none")
    doc = run_json(capsys, *argv, "--json")
    assert doc["feasible"] is False
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "                  chip: h100-sxm" and len(lines) == 11
    assert lines[-1] == f"infeasible: {doc['reason']}"


# ----------------------------------------------------------------------------- compare


@pytest.mark.parametrize("width", [80, 120])
def test_compare_fits_the_terminal_with_units(qs: Path, width: int,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    doc = run_json(capsys, "compare", str(qs), "--against", "h100-sxm", "--format", "json")
    terminal(monkeypatch, width)
    code, out, err = cli(capsys, "compare", str(qs), "--against", "h100-sxm")
    assert code == 0, err
    lines = text_of(out)
    assert_fits(lines, width)
    best = doc["best"][0]
    row = next(line for line in lines if line.split()[:1] == [best["objective"]])
    cells = row.split()
    assert parse_num(cells[2]) == pytest.approx(best["metrics"][best["objective"]], rel=5e-4)
    assert unit_of(best["objective"]) in row and row.endswith("x")
    assert "rows with no value on either side left out" in out
    wide = cli(capsys, "compare", str(qs), "--against", "h100-sxm", "--wide")[1]
    assert "cost_per_run_usd" in wide and "left out" not in wide


def test_compare_piped_has_every_row_and_units(qs: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "compare", str(qs), "--against", "h100-sxm")
    assert code == 0, err
    assert "cost_per_run_usd" in out and "left out" not in out
    assert re.search(r"^\s*tdp_w\s+\S+\s+\S+\s+W\s*$", out, re.M)
    assert "changed vs h100-sxm as a design point" in out


# ----------------------------------------------------------------------------- recommend


@pytest.mark.parametrize("width", [60, 80, 120])
def test_recommend_table_fits(qs: Path, width: int, capsys: pytest.CaptureFixture[str]) -> None:
    from codesign.results.recommend import recommend

    rec = recommend(qs, None, 3, None)
    recommend_table(rec, width=width)
    lines = text_of(capsys.readouterr().out)
    assert_fits(lines, width)
    _, body = table_rows(lines)
    assert len(body) == len(rec["recommendations"])
    assert [int(line.split()[1]) for line in body] == [
        r["trial"] for r in rec["recommendations"]]
    recommend_table(rec, wide=True)
    wide = capsys.readouterr().out
    assert all(p["metric"] in wide for p in rec["preferences"]) and "left out" not in wide


def test_recommend_command_in_a_terminal(qs: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    terminal(monkeypatch, 80)
    code, out, err = cli(capsys, "recommend", str(qs))
    assert code == 0, err
    assert "recommended: trial" in out and "…" not in out
    lines = text_of(out)
    _, body = table_rows(lines)
    assert_fits(body, 80)
