"""Serving under traffic from the outside: ``codesign evaluate`` with the traffic flags
(the ``serving_traffic`` part of its JSON, bad combinations refused with exit 2), the Python
API (:func:`codesign.model.serving.evaluate_traffic`), and the packaged serving measurements
(``serving_cases.csv``) predicted row by row (:mod:`codesign.validate.serving`)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from codesign.cli import main
from codesign.model import catalog
from codesign.model.serving import Traffic, evaluate_traffic
from codesign.model.specs import ClusterSpec, InferJob
from codesign.validate.serving import cases_path, serving_errors

BASE = ["evaluate", "--chip", "h100-sxm", "--workload", "llama3-70b", "--input-len", "2048",
        "--output-len", "256", "--precision", "fp8", "--n-chips", "32", "--ttft-slo-s", "2",
        "--itl-slo-s", "0.05", "--input-cv", "1", "--json"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_reports_goodput_and_percentiles(capsys) -> None:
    code, out, err = cli(capsys, *BASE)
    assert code == 0, err
    one = json.loads(out)["serving_traffic"]
    code, out, err = cli(capsys, *BASE, "--disaggregated")
    assert code == 0, err
    dis = json.loads(out)["serving_traffic"]
    for s in (one, dis):
        assert s["feasible"] and s["goodput_rps"] > 0
        assert s["ttft_s"]["p50"] <= s["ttft_s"]["p90"] <= s["ttft_s"]["p99"] <= 2.0 + 1e-9
        assert s["itl_s"]["p99"] <= 0.05 + 1e-9
        assert s["output_tokens_per_s"] == pytest.approx(s["goodput_rps"] * 256)
    assert one["mode"] == "one pool" and one["prefill_chips"] is None
    assert dis["mode"] == "disaggregated"
    assert dis["prefill_chips"] + dis["decode_chips"] == 32 and dis["kv_transfer_s"] > 0
    # at an offered rate under the goodput: the limits hold, and the rate is the one asked
    rate = 0.5 * dis["goodput_rps"]
    code, out, _ = cli(capsys, *BASE, "--disaggregated", "--rate-rps", str(rate))
    at = json.loads(out)["serving_traffic"]
    assert at["rate_rps"] == pytest.approx(rate) and at["goodput_rps"] is None
    assert at["ttft_s"]["p99"] <= dis["ttft_s"]["p99"]


@pytest.mark.parametrize("extra,flag", [
    (["--prefill-chips", "8"], "--prefill-chips"),  # without --disaggregated
    (["--disaggregated", "--prefill-chips", "32"], "--prefill-chips"),  # no decoder left
    (["--disaggregated", "--decode-chip", "nope"], "--decode-chip"),
    (["--slo-percentile", "1.5"], "--slo-percentile"),
    (["--prefix-hit", "-0.1"], "--prefix-hit"),
])
def test_bad_traffic_flags_exit_2(capsys, extra: list[str], flag: str) -> None:
    try:
        code = main([*BASE, *extra])
    except SystemExit as exc:  # argparse's range checks
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert flag in err and "Traceback" not in err


def test_traffic_flags_need_a_serving_workload(capsys) -> None:
    code, _, err = cli(capsys, "evaluate", "--chip", "h100-sxm", "--workload", "llama3-8b",
                       "--n-chips", "8", "--disaggregated")
    assert code == 2 and "--disaggregated" in err


def test_a_heterogeneous_pair_is_evaluated() -> None:
    """A decode pool of another chip: its mapping fits that chip's memory, and the answer
    names it."""
    job = InferJob(catalog.get_model("llama3-70b"), 2048, 256, precision="fp8",
                   ttft_slo_s=2.0, itl_slo_s=0.05)
    h100 = catalog.get_chip("h100-sxm")
    h200 = catalog.get_chip("h200")
    res = evaluate_traffic(h100, ClusterSpec(32), job, Traffic(disaggregated=True),
                           decode_chip=h200, scaleout_gbps=400.0)
    assert res["feasible"] and res["decode_chip"] == "h200"
    same = evaluate_traffic(h100, ClusterSpec(32), job, Traffic(disaggregated=True),
                            scaleout_gbps=400.0)
    # more HBM capacity and bandwidth on the decode side serve no less
    assert res["goodput_rps"] >= same["goodput_rps"] * 0.999


def test_serving_cases_are_predicted_or_skipped_with_a_reason() -> None:
    with open(cases_path(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 20
    assert all(r["source"].strip() for r in rows)  # every row cites its source
    res = serving_errors()
    assert len(res["rows"]) + len(res["skipped"]) == len(rows)
    assert len(res["rows"]) >= 20
    assert all(s["reason"] for s in res["skipped"])
    for r in res["rows"]:
        assert math.isfinite(r["predicted"]) and r["predicted"] > 0, r
        assert r["error"] == pytest.approx((r["predicted"] - r["measured"]) / r["measured"])
    for fam in ("throughput", "latency", "all"):
        assert res["summary"][fam]["rows"] > 0
        assert math.isfinite(res["summary"][fam]["median_abs_error"])


def test_validate_serving_cli(capsys, tmp_path) -> None:
    code, out, err = cli(capsys, "validate", "--serving", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["summary"]["all"]["rows"] == len(doc["rows"]) > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    code, _, err = cli(capsys, "validate", "--serving", "--cases", str(bad))
    assert code == 2 and "bad.csv" in err and "case_id" in err
