"""Serving workloads end to end: config, evaluate, validate accuracy, search vs a baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run

from codesign.errors import ConfigError
from codesign.model.specs import InferJob
from codesign.search.experiment import load_experiment
from codesign.validate.predictions import load_cases, run_cases

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "experiments" / "inference_llama70b.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text.replace("SPACE", str(REPO / "search_spaces" / "inference_2027.toml")))
    return p


SERVE = """
[experiment]
name = "serve"
search_space = "SPACE"
[workload]
kind = "infer"
model = "llama3-8b"
input_len = 1000
output_len = 200
precision = "fp8"
itl_slo_s = 0.05
[cluster]
n_chips = 8
[objectives]
tokens_per_joule = "maximize"
die_area_mm2 = "minimize"
[search]
population = 16
"""


def test_serving_experiment_loads() -> None:
    exp = load_experiment(SERVING)
    assert isinstance(exp.job, InferJob)
    assert exp.job.ttft_slo_s == 2.0 and exp.job.itl_slo_s == 0.05
    assert exp.baselines == ("h100-sxm",)


@pytest.mark.parametrize(("kind_text", "bad"), [
    ('kind = "infer"\nmodel = "llama3-8b"\ninput_len = 10\noutput_len = 10', "mfu"),
    ('kind = "train"\nmodel = "llama3-8b"\nseq_len = 1024\nglobal_batch = 8', "ttft_s"),
])
def test_metric_of_the_other_workload_kind_is_rejected(tmp_path: Path, kind_text: str,
                                                       bad: str) -> None:
    text = SERVE.replace(
        'kind = "infer"\nmodel = "llama3-8b"\ninput_len = 1000\noutput_len = 200\n'
        'precision = "fp8"\nitl_slo_s = 0.05', kind_text)
    text = text.replace('die_area_mm2 = "minimize"', f'{bad} = "minimize"')
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    assert err.value.key == f"objectives.{bad}"


def test_infer_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, SERVE.replace("itl_slo_s = 0.05", "itl_slo_s = 0")))
    assert err.value.key == "workload.itl_slo_s"
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, SERVE.replace("input_len = 1000", "seq_len = 1000")))
    assert err.value.key == "workload.seq_len"  # a training key in a serving workload


def test_evaluate_json_for_serving(capsys) -> None:
    code, out, err = run(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b",
                         "--n-chips", "2", "--input-len", "5000", "--output-len", "500",
                         "--concurrency", "1", "--precision", "fp8", "--tp", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    for key in ("chip", "die_area_mm2", "tdp_w", "chip_cost_usd", "n_chips", "mapping",
                "ttft_s", "itl_s", "tokens_per_s", "tokens_per_s_per_chip", "cluster_power_w",
                "tokens_per_joule", "cost_per_mtoken_usd", "feasible", "reason"):
        assert key in doc, key
    assert doc["feasible"] and doc["mapping"]["tp"] == 2 and doc["mapping"]["micro_batch"] == 1
    # NIM measured TTFT 0.407 s and ITL 18.6 ms for this configuration (calibration.csv)
    assert doc["ttft_s"] == pytest.approx(0.407, rel=0.25)
    assert doc["itl_s"] == pytest.approx(0.0186, rel=0.25)


def test_inference_accuracy_on_trtllm_and_nim_rows() -> None:
    cases = [c for c in load_cases() if c.case_id.startswith(("TRTLLM-", "NIM-"))]
    df = run_cases(cases)
    assert len(df) == 12
    assert df["predicted"].notna().all(), df[["case_id", "reason"]].to_string()
    assert df["error_pct"].abs().median() <= 15.0, df[["case_id", "error_pct"]].to_string()


def test_serving_search_beats_h100_on_tokens_per_joule(tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exp = write(tmp_path, SERVE)
    code, _, err = run(capsys, "search", str(exp), "--trials", "128", "--no-progress")
    assert code == 0, err
    code, out, err = run(capsys, "compare", "runs/serve", "--against", "h100-sxm",
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["baseline"]["feasible"]
    best = next(b for b in doc["best"] if b["objective"] == "tokens_per_joule")
    assert best["improvement"]["tokens_per_joule"] > 1.0, best
    assert best["metrics"]["itl_s"] <= 0.05  # at the SLO
    assert best["changed"]  # the reason is visible: which parameters moved
    code, out, _ = run(capsys, "compare", "runs/serve", "--against", "h100-sxm")
    assert "changed vs h100-sxm" in out
