"""`codesign extend`: the ladder from a baseline chip to a design, one change per rung.

One short run of experiments/instantiate_extend.toml (48 trials) serves every test: the
ladder's ends reproduce the stored baseline and target trials, each rung applies exactly one of
the differing parameters, the greedy order and the one-at-a-time gains are re-derived here by
the search's own evaluation path, and the command's text, JSON and bad-input errors.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run, run_json

from codesign.cli import main

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "instantiate_extend.toml"
TRIALS = 48
REL = 1e-9


def close(a: Any, b: Any) -> bool:
    return math.isclose(float(a), float(b), rel_tol=REL, abs_tol=1e-12)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extend") / "run"
    assert main(["search", str(EXPERIMENT), "--trials", str(TRIALS), "--out", str(out),
                 "--no-progress", "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def ladder(run_dir: Path) -> Any:
    from codesign.results.extend import extension_ladder

    return extension_ladder(run_dir)


def test_experiment_baselines_and_space_start_at_maia100(run_dir: Path) -> None:
    """The space's lower bounds are Maia 100 as projected: its baseline trial sits at every
    searched parameter's low end (or first choice), and every trial at or above it."""
    import codesign
    from codesign.model import catalog
    from codesign.search.design import project_chip

    r = codesign.load_run(run_dir)
    assert list(r.experiment.baselines) == ["maia100", "h100-sxm"]
    assert set(r.baselines["baseline"]) == {"maia100", "h100-sxm"}
    maia = project_chip(catalog.get_chip("maia100"))
    row = r.baselines.set_index("baseline").loc["maia100"]
    for p in r.experiment.space.params:
        low = p.choices[0] if p.kind == "categorical" else p.low
        assert row[f"param_{p.name}"] == low == maia[p.name], p.name
        if p.kind != "categorical":
            assert (r.trials[f"param_{p.name}"] >= low).all(), p.name


def test_ladder_ends_reproduce_the_stored_trials(run_dir: Path, ladder: Any) -> None:
    import codesign

    r = codesign.load_run(run_dir)
    assert ladder.baseline == "maia100" and ladder.matches_stored
    base = r.baselines.set_index("baseline").loc["maia100"]
    assert ladder.baseline_trial == int(base["trial"])
    # default target: the feasible design best on the first objective (tokens/J)
    best = r.best("tokens_per_joule")
    target = r.trials.set_index("trial").loc[ladder.trial]
    assert bool(target["constraints_ok"])
    assert target["tokens_per_joule"] == best["tokens_per_joule"]
    df = ladder.ladder
    assert len(df) >= 2, "48 trials should find a design other than Maia 100"
    for m in ladder.metrics:
        assert close(df[m].iloc[0], base[m]), m
        assert close(df[m].iloc[-1], target[m]), m
    for m in ("tokens_per_joule", "cost_per_mtoken_usd"):
        assert close(df[f"total_pct_{m}"].iloc[-1], 100 * (target[m] - base[m]) / base[m])


def test_each_rung_applies_one_differing_parameter(run_dir: Path, ladder: Any) -> None:
    import codesign
    from codesign.search.design import DESIGN_PARAMETERS

    r = codesign.load_run(run_dir)
    names = [p.name for p in r.experiment.space.params]
    base = r.baselines.set_index("baseline").loc["maia100"]
    target = r.trials.set_index("trial").loc[ladder.trial]
    differ = {n for n in names if base[f"param_{n}"] != target[f"param_{n}"]}
    df = ladder.ladder
    assert list(df["rung"]) == list(range(len(df)))
    assert df["param"].iloc[0] is None or df["param"].isna().iloc[0]
    applied = list(df["param"].iloc[1:])
    assert len(applied) == len(differ) == len(set(applied))
    assert set(applied) == differ
    for _, row in df.iloc[1:].iterrows():
        n = row["param"]
        assert row["from"] == base[f"param_{n}"] and row["to"] == target[f"param_{n}"]
        assert row["unit"] == DESIGN_PARAMETERS[n].unit


def test_one_at_a_time_gains_and_the_greedy_order(run_dir: Path, ladder: Any) -> None:
    """Re-evaluate here: each change alone on the baseline gives ``alone_pct``; each rung's
    params give its metrics; each rung's pick is the best of the changes left (within the
    constraints first)."""
    import codesign
    from codesign.results.extend import baseline_params
    from codesign.results.sensitivity import evaluate_params

    r = codesign.load_run(run_dir)
    exp = r.experiment
    _, start = baseline_params(exp, None)
    target = next(dict(t.params) for t in r.study.trials if t.number == ladder.trial)
    df = ladder.ladder
    base_tpj = df["tokens_per_joule"].iloc[0]
    changes = list(df["param"].iloc[1:])
    alone = evaluate_params(exp, [{**start, n: target[n]} for n in changes])
    for n, m, (_, row) in zip(changes, alone, df.iloc[1:].iterrows(), strict=True):
        assert row["alone_feasible"] == m["constraints_ok"]
        if m["feasible"]:
            want = 100 * (m["tokens_per_joule"] - base_tpj) / base_tpj
            assert close(row["alone_pct_tokens_per_joule"], want), n
            assert close(row["alone_gain_pct"], want), n  # maximised: gain = change
    first = df.iloc[1]
    assert close(first["alone_pct_tokens_per_joule"], first["change_pct_tokens_per_joule"])
    current = dict(start)
    for k, n in enumerate(changes, start=1):
        left = changes[k - 1:]
        cands = evaluate_params(exp, [{**current, c: target[c]} for c in left])
        tier = [0 if m["constraints_ok"] else 1 if m["feasible"] else 2 for m in cands]
        best = min(range(len(left)), key=lambda i: (tier[i], -cands[i]["tokens_per_joule"],
                                                     left[i]))
        assert left[best] == n, (k, left)
        current[n] = target[n]
        assert close(df["tokens_per_joule"].iloc[k], cands[best]["tokens_per_joule"])
        prev = df["tokens_per_joule"].iloc[k - 1]
        if df["feasible"].iloc[k] and df["feasible"].iloc[k - 1]:
            assert close(df["change_pct_tokens_per_joule"].iloc[k],
                         100 * (df["tokens_per_joule"].iloc[k] - prev) / prev)


def test_cli_text_and_json(run_dir: Path, ladder: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "extend", str(run_dir))
    assert code == 0, err
    lines = out.splitlines()
    assert f"maia100 (trial {ladder.baseline_trial}) -> trial {ladder.trial}" in lines[0]
    assert "tokens/J" in lines[2] and "USD per 1e6 tokens" in lines[2] and "W" in lines[2]
    body = lines[3:3 + len(ladder.ladder)]
    assert body[0].split()[0] == "0" and "maia100 as projected" in body[0]
    for line, (_, row) in zip(body[1:], ladder.ladder.iloc[1:].iterrows(), strict=True):
        assert line.split()[:3] == [str(row["rung"]), row["param"], str(row["from"])
                                    if not isinstance(row["from"], float)
                                    else f"{row['from']:.4g}"]
        assert f" {row['unit']} " in line or not row["unit"]
        assert line.rstrip().endswith("ok") or "infeasible" in line
    assert any(line.startswith("tokens_per_joule: ") for line in lines)

    doc = run_json(capsys, "extend", str(run_dir), "--json")
    assert doc["study"] == "instantiate_extend" and doc["baseline"] == "maia100"
    assert doc["trial"] == ladder.trial and doc["baseline_trial"] == ladder.baseline_trial
    assert doc["objectives"] == [["tokens_per_joule", "maximize"],
                                 ["cost_per_mtoken_usd", "minimize"]]
    assert doc["units"]["tokens_per_joule"] == "tokens/J"
    rungs = doc["rungs"]
    assert len(rungs) == len(ladder.ladder)
    keys = {"rung", "param", "unit", "from", "to", "tokens_per_joule", "cost_per_mtoken_usd",
            "die_area_mm2", "tdp_w", "change_pct_tokens_per_joule",
            "change_pct_cost_per_mtoken_usd", "alone_pct_tokens_per_joule",
            "alone_pct_cost_per_mtoken_usd", "gain_pct", "alone_gain_pct", "feasible",
            "constraints_ok", "why", "alone_feasible", "alone_why"}
    for r in rungs:
        assert keys <= set(r)
        assert set(r) == set(rungs[0])
    assert rungs[0]["param"] is None and rungs[0]["change_pct_tokens_per_joule"] is None
    assert [r["param"] for r in rungs[1:]] == list(ladder.ladder["param"].iloc[1:])
    assert rungs[-1]["tokens_per_joule"] == ladder.ladder["tokens_per_joule"].iloc[-1]


def test_explicit_trial_and_baseline(run_dir: Path, ladder: Any,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # the baseline's own trial: nothing to change, one rung
    doc = run_json(capsys, "extend", str(run_dir), "--trial", str(ladder.baseline_trial),
                   "--json")
    assert len(doc["rungs"]) == 1 and doc["trial"] == ladder.baseline_trial
    # from H100 as projected: its own baseline trial at rung 0, the same target at the end
    doc = run_json(capsys, "extend", str(run_dir), "--baseline", "h100-sxm", "--trial",
                   str(ladder.trial), "--json")
    import codesign

    rows = codesign.load_run(run_dir).trials.set_index("trial")
    h100 = codesign.load_run(run_dir).baselines.set_index("baseline").loc["h100-sxm"]
    assert doc["baseline_trial"] == int(h100["trial"])
    assert close(doc["rungs"][0]["tokens_per_joule"], h100["tokens_per_joule"])
    assert close(doc["rungs"][-1]["tokens_per_joule"], rows.loc[ladder.trial, "tokens_per_joule"])


def test_bad_input_is_one_line_exit_2(run_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "extend", str(run_dir), "--trial", "9999")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert "9999" in err and f"0-{TRIALS - 1}" in err

    code, out, err = run(capsys, "extend", str(run_dir), "--baseline", "b200")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'b200'" in err and "maia100, h100-sxm" in err

    # a trial that is not complete (asked, never told), in a copy of the run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    import codesign

    number = codesign.load_run(copy).study.ask().number
    code, out, err = run(capsys, "extend", str(copy), "--trial", str(number))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{number} (RUNNING)" in err and f"0-{TRIALS - 1}" in err

    # a run without baselines
    text = EXPERIMENT.read_text(encoding="utf-8")
    text = text.replace('baselines = ["maia100", "h100-sxm"]\n', "").replace(
        '"../search_spaces/partner_extend.toml"',
        json.dumps(str(REPO / "search_spaces" / "partner_extend.toml")))
    bare = tmp_path / "bare.toml"
    bare.write_text(text, encoding="utf-8")
    assert main(["search", str(bare), "--trials", "8", "--out", str(tmp_path / "bare"),
                 "--no-progress", "--json"]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "extend", str(tmp_path / "bare"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "baselines" in err and "got []" in err

    code, out, err = run(capsys, "extend", str(tmp_path / "not-a-run"))
    assert code == 2


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "extend", "--help")
    assert code == 0
    assert "codesign extend runs/instantiate_extend" in out and "default" in out


def test_report_renders(run_dir: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code, _, err = run(capsys, "report", str(run_dir), "-o", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert "maia100" in html and "h100-sxm" in html and "instantiate_extend" in html
