"""``codesign bench --json``: the keys of the DESIGN.md contract, with sane (not timed) values.

Performance targets live in the bench output, not here: no timing thresholds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import no_nan

from codesign.cli import main
from codesign.search.bench import PROBLEMS

NAMES = ["mtnlg530b-a100-5128", "llama3-405b-h100-16384", "100k-chips",
         "llama3-70b-mi300x-1024-throttled", "1gw-825k-chips"]
SEARCH_TRIALS = 64
REPO = Path(__file__).resolve().parents[1]


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench", "--json", "--quick", "--search-trials", str(SEARCH_TRIALS)])
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert len(text.strip().splitlines()) == 1, text
    parsed = json.loads(text, parse_constant=no_nan)
    assert isinstance(parsed, dict)
    return parsed


def test_top_level_keys(doc) -> None:
    assert {"evaluator", "mapping_search", "search"} <= doc.keys()


def test_evaluator(doc) -> None:
    ev = doc["evaluator"]
    assert {"evals_per_s", "single_eval_us"} <= ev.keys()
    assert _positive(ev["evals_per_s"])
    assert _positive(ev["single_eval_us"])


def test_mapping_search_problems(doc) -> None:
    searches = doc["mapping_search"]
    assert [s["name"] for s in searches] == NAMES
    assert [p.name for p in PROBLEMS] == NAMES
    for s in searches:
        assert {"name", "seconds", "candidates", "feasible", "best_step_time_s",
                "mapping"} <= s.keys()
        assert _positive(s["seconds"]), s
        assert isinstance(s["candidates"], int) and s["candidates"] > 0, s
        assert isinstance(s["feasible"], int) and 0 < s["feasible"] <= s["candidates"], s
        assert _positive(s["best_step_time_s"]), s
        m = s["mapping"]
        assert m["tp"] * m["pp"] * m["dp"] * m["cp"] <= s["n_chips"], s
        assert 0 < s["clock_fraction"] <= 1, s
        # every mapping decided: evaluated or ruled out by an exact bound
        assert isinstance(s["ruled_out"], int) and s["ruled_out"] >= 0, s
        assert s["decided_per_s"] == pytest.approx((s["candidates"] + s["ruled_out"])
                                                   / s["seconds"])
    throttled = searches[NAMES.index("llama3-70b-mi300x-1024-throttled")]
    assert throttled["clock_fraction"] < 1  # the throttled problem throttles


def test_evals_per_s_is_the_mtnlg_search_rate(doc) -> None:
    first = doc["mapping_search"][0]
    assert doc["evaluator"]["evals_per_s"] == pytest.approx(first["candidates"]
                                                            / first["seconds"])


def test_search(doc) -> None:
    se = doc["search"]
    assert se is not None, "experiments/quickstart.toml is in the repository"
    assert {"trials", "durable_trials_per_s", "plain_optuna_trials_per_s", "sampler"} <= se.keys()
    assert se["trials"] == SEARCH_TRIALS
    assert _positive(se["durable_trials_per_s"])
    assert _positive(se["plain_optuna_trials_per_s"])
    assert isinstance(se["sampler"], str) and se["sampler"]


def test_notes_say_compile_is_excluded(doc) -> None:
    assert any("compil" in n for n in doc["notes"])


def test_bad_search_trials_exits_2(capsys) -> None:
    code = main(["bench", "--search-trials", "0"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "--search-trials" in err and "0" in err, err


def test_help_exits_0(capsys) -> None:
    code = main(["bench", "--help"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "--json" in out and "--quick" in out


def test_launcher_script_help() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout
