"""Goodput at scale (issue 19): Daly's checkpoint arithmetic, failures by component, spares and
blast radius, the goodput metrics of evaluate and of a search, and the fleet checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run as cli

from codesign.model.checkpoint import checkpoint_bytes, effective_fraction, optimal_interval_s
from codesign.model.reliability import (
    PER_CHIP_DAY,
    PER_STACK_DAY,
    Resilience,
    blast_chips,
    failures_per_day,
    goodput,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("delta", "mtbf"), [(60.0, 9000.0), (5.0, 3600.0), (600.0, 86400.0)])
def test_daly_optimum_is_the_numerical_optimum(delta: float, mtbf: float) -> None:
    taus = np.linspace(1.0, 20 * math.sqrt(2 * delta * mtbf), 20000)
    best = taus[np.argmax([effective_fraction(t, delta, 600.0, mtbf) for t in taus])]
    tau = optimal_interval_s(delta, mtbf)
    assert effective_fraction(tau, delta, 600.0, mtbf) == pytest.approx(
        effective_fraction(best, delta, 600.0, mtbf), rel=1e-4)


def test_effective_fraction_limits() -> None:
    assert effective_fraction(3600.0, 60.0, 600.0, math.inf) == pytest.approx(3600 / 3660)
    # more failures, less progress; a longer restart, less progress
    a = effective_fraction(1000.0, 10.0, 600.0, 36000.0)
    assert effective_fraction(1000.0, 10.0, 600.0, 3600.0) < a
    assert effective_fraction(1000.0, 10.0, 1200.0, 36000.0) < a
    assert checkpoint_bytes(1e9) == 14e9  # bf16 weights + fp32 Adam states


def test_failures_scale_with_what_the_cluster_holds() -> None:
    one = failures_per_day(1000, 5, 10, 100)
    two = failures_per_day(2000, 5, 20, 200)
    assert all(two[k] == pytest.approx(2 * one[k]) for k in one)
    more_hbm = failures_per_day(1000, 8, 10, 100)
    assert more_hbm["hbm"] == pytest.approx(one["hbm"] * 8 / 5)
    assert one["accelerator"] == pytest.approx(1000 * PER_CHIP_DAY["accelerator"])
    assert one["hbm"] == pytest.approx(1000 * 5 * PER_STACK_DAY)


KW = {"hbm_stacks": 8, "switches": 3000.0, "optical_links": 100000.0, "host_link_gbs": 64.0}


def test_spares_async_checkpoints_and_blast_radius() -> None:
    base = goodput(100_000, 1e7, 405e9, domain=72, switched=True, **KW)
    spares = goodput(100_000, 1e7, 405e9, domain=72, switched=True,
                     res=Resilience(spares_per_domain=2), **KW)
    assert spares["effective_training_fraction"] > base["effective_training_fraction"]
    assert spares["spare_chips"] == 2 * (100_000 // 72) and base["spare_chips"] == 0
    assert 0.9 < spares["spare_cover"] <= 1.0
    fast = goodput(100_000, 1e7, 405e9, domain=72, switched=True,
                   res=Resilience(async_checkpoint=True), **KW)
    assert fast["checkpoint_block_s"] < base["checkpoint_block_s"]
    assert fast["checkpoint_interval_s"] >= fast["checkpoint_write_s"]
    # without spares a larger switched domain takes more chips out for each repair
    node = goodput(100_000, 1e7, 405e9, domain=8, switched=True, **KW)
    assert base["capacity_loss"] > node["capacity_loss"] > 0
    assert blast_chips(100_000, 72, True) == 72 and blast_chips(100_000, 72, False) == 8
    for g in (base, spares, fast, node):  # the shares of wall time add up
        assert sum(g[k] for k in ("effective_training_fraction", "checkpoints", "restarts",
                                  "lost_work", "repair")) == pytest.approx(1.0)
    assert base["goodput_tokens_per_s"] == pytest.approx(
        1e7 * base["effective_training_fraction"])


def test_evaluate_reports_goodput(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b",
                         "--n-chips", "4096", "--json")
    assert code == 0, err
    d = json.loads(out)
    g = d["goodput"]
    assert g["interruptions_per_day"] == pytest.approx(sum(g["failures_per_day"].values()))
    assert 0 < g["effective_training_fraction"] < 1
    assert g["train_goodput_tokens_per_s"] == pytest.approx(
        d["tokens_per_s"] * g["effective_training_fraction"])
    assert g["cost_per_goodput_mtoken_usd"] > d["cost_per_mtoken_usd"]
    code, out, err = cli(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                         "--n-chips", "8", "--input-len", "1024", "--json")
    assert code == 0, err
    assert "goodput" not in json.loads(out)


GOODPUT = """
[experiment]
name = "gp"
search_space = "{space}"
[workload]
kind = "train"
model = "llama3-70b"
seq_len = 4096
global_batch = 1024
train_tokens = 1e12
[cluster]
n_chips = 8192
{cluster}
[objectives]
train_goodput_tokens_per_s = "maximize"
cost_per_goodput_mtoken_usd = "minimize"
[budget]
trials = 32
[search]
population = 16
"""


def test_goodput_search_and_bad_cluster_value(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text((REPO / "search_spaces" / "goodput_100k.toml").read_text()
                     .replace("choices = [8, 16, 32, 72, 144]", "choices = [8, 72]"))
    exp = tmp_path / "gp.toml"
    exp.write_text(GOODPUT.format(space=space, cluster=""))
    code, _, err = cli(capsys, "search", str(exp), "--out", str(tmp_path / "run"),
                       "--no-progress")
    assert code == 0, err
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run" / "trials")
    ok = rows[rows.feasible]
    assert len(ok) and (ok.effective_training_fraction.between(0, 1)).all()
    assert np.allclose(ok.train_goodput_tokens_per_s,
                       ok.tokens_per_s * ok.effective_training_fraction)
    assert (ok.goodput_train_days >= ok.train_days).all()
    assert set(ok.param_spares_per_domain) <= {0, 1, 2, 4, 8}
    # the report draws failures by component and the shares of wall time
    from codesign.results.report import write_report

    html = write_report(str(tmp_path / "run"), tmp_path / "r.html",
                        against=["h100-sxm"]).read_text()
    assert 'id="plot-goodput"' in html and "job interruptions per day" in html
    bad = tmp_path / "bad.toml"
    bad.write_text(GOODPUT.format(space=REPO / "search_spaces" / "quickstart.toml",
                                  cluster="spares_per_domain = -1"))
    code, _, err = cli(capsys, "search", str(bad), "--out", str(tmp_path / "bad"),
                       "--no-progress")
    assert code == 2 and "spares_per_domain" in err and "bad.toml" in err
    assert not (tmp_path / "bad").exists()


def test_fleet_checks_state_their_figures() -> None:
    from codesign.validate.goodput import fleet_checks

    rows = {(r["name"], r["metric"]): r for r in fleet_checks()}
    bloom = rows[("bloom-176b-384-a100", "GPU failures per week")]
    assert bloom["published"][0] <= bloom["predicted"] <= bloom["published"][1]
    assert bloom["error_pct"] == 0.0
    ll = [r for (n, _), r in rows.items() if n == "llama3-405b-16k-h100"]
    assert len(ll) == 3 and all(r["predicted"] > 0 for r in ll)
    for r in rows.values():
        pub = r["published"]
        if not isinstance(pub, list):
            assert r["error_pct"] == pytest.approx(100 * (r["predicted"] - pub) / pub)
