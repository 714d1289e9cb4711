"""codesign.search.chip_file: a chip written from its spec sheet ([chip] TOML).

A catalog row and a spec-sheet file are the same thing (chips.csv's columns and units); the
values a sheet leaves out are stated by codesign.model.catalog.assume.explain_spec_sheet and
listed under ``assumed``; bad input is exit code 2 naming file and key, never a traceback.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run, run_json

from codesign.errors import ConfigError
from codesign.model import catalog
from codesign.model.catalog.assume import explain_spec_sheet
from codesign.search.chip_file import (
    CHIP_KEYS,
    REQUIRED,
    load_chip_file,
    read_chip_file,
    resolve_chip,
    toml_kind,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "chips" / "my_accelerator.toml"
_TEXT = {"id", "vendor", "name", "hbm_gen"}
_INT = {"compute_units", "hbm_stacks", "scaleup_links", "scaleup_domain", "n_compute_dies",
        "year"}


def _rows() -> dict[str, dict[str, str]]:
    """chips.csv as text, by id."""
    path = resources.files("codesign.model.catalog").joinpath("chips.csv")
    with path.open(encoding="utf-8") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def _toml_value(key: str, text: str) -> str:
    if key in _TEXT or key == "source":
        return json.dumps(text)
    return str(int(float(text))) if key in _INT else repr(float(text))


def _sheet_from_row(row: dict[str, str], keep: tuple[str, ...] | None = None) -> str:
    """A [chip] table with a chips.csv row's datasheet columns (not its id or source), every
    non-empty one, or those of ``keep``."""
    lines = ["[chip]"]
    for key, text in row.items():
        if key in ("id", "source") or not text.strip() or (keep and key not in keep):
            continue
        lines.append(f"{key} = {_toml_value(key, text)}")
    return "\n".join(lines) + "\n"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _evaluate(capsys: pytest.CaptureFixture[str], chip: str, *extra: str) -> dict[str, Any]:
    return run_json(capsys, "evaluate", "--chip", chip, "--workload", "llama3-70b",
                    "--n-chips", "64", "--json", *extra)


def _numbers(doc: Any, prefix: str = "") -> dict[str, float]:
    """Every number of an evaluate document by its key path."""
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(_numbers(v, f"{prefix}{k}."))
    elif isinstance(doc, bool | str) or doc is None:
        pass
    elif isinstance(doc, int | float):
        out[prefix.rstrip(".")] = float(doc)
    return out


# ------------------------------------------------------------------- same thing as a row


def test_every_catalog_row_with_the_required_numbers_is_a_valid_sheet(tmp_path: Path) -> None:
    """The ranges are physical: every published chip loads, and to the catalog's ChipSpec;
    one without a scale-up bandwidth or link count for its scale-up domain (MI355X, whose
    catalog figure is a stated third-party one) is refused: the model needs it."""
    loaded = 0
    for chip_id, row in _rows().items():
        if any(not row[k].strip() for k in REQUIRED):
            continue
        path = _write(tmp_path, f"{chip_id}-sheet.toml", _sheet_from_row(row))
        if int(row["scaleup_domain"] or 1) > 1 and not (row["scaleup_gbps"]
                                                        or row["scaleup_links"]):
            with pytest.raises(ConfigError, match=r"chip\.scaleup_gbps: expected a scale-up"):
                read_chip_file(path)
            continue
        sheet = read_chip_file(path)
        assert sheet == replace(catalog.get_chip(chip_id), id=f"{chip_id}-sheet"), chip_id
        loaded += 1
    assert loaded >= 10  # the rows with a TDP and the other required numbers


def test_h100_datasheet_evaluates_as_the_catalog_h100(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """All of h100-sxm's datasheet columns: nothing assumed, and the same answer as the
    catalog chip in the same (generic) cluster; with its platform only the host and network
    share differ, not the chip's speed."""
    path = _write(tmp_path, "h100_sheet.toml", _sheet_from_row(_rows()["h100-sxm"]))
    chip, assumed = load_chip_file(path)
    assert assumed == {}
    assert chip == replace(catalog.get_chip("h100-sxm"), id="h100_sheet")
    sheet = _evaluate(capsys, str(path))
    generic = _evaluate(capsys, "h100-sxm", "--no-platform")
    assert sheet["assumed"] == {} and sheet["feasible"]
    assert sheet["chip"] == "h100_sheet" and sheet["mapping"] == generic["mapping"]
    a, b = _numbers(sheet), _numbers(generic)
    assert set(a) == set(b)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
    built = _evaluate(capsys, "h100-sxm")  # in its HGX platform as built
    for key in ("step_time_s", "mfu", "tokens_per_s", "tokens_per_s_per_chip", "chip_power_w",
                "chip_cost_usd", "die_area_mm2", "tdp_w"):
        assert sheet[key] == pytest.approx(built[key], rel=1e-3), key


def test_fewer_values_are_derived_and_listed_as_assumed(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    keep = (*REQUIRED, "vendor", "year", "scaleup_gbps", "tflops_fp8")
    path = _write(tmp_path, "h100_short.toml",
                  _sheet_from_row(_rows()["h100-sxm"], keep=keep))
    chip, why = load_chip_file(path)
    derived = {"clock_ghz", "compute_units", "sram_mb", "scaleout_gbps", "scaleup_domain",
               "scaleup_links", "process_nm", "hbm_gen", "hbm_stacks", "die_area_mm2",
               "n_compute_dies", "price_usd"}
    assert set(why) == derived
    for name, a in why.items():
        assert getattr(chip, name) == a.value and a.reason, name
    # the rules land on (or next to) H100's published figures
    h100 = catalog.get_chip("h100-sxm")
    assert (chip.hbm_gen, chip.hbm_stacks, chip.process_nm) == ("HBM3", 5, 4)
    assert (chip.scaleup_domain, chip.scaleup_links, chip.scaleout_gbps) == (8, 18, 400.0)
    assert chip.compute_units == 134 and chip.sram_mb == pytest.approx(h100.sram_mb, rel=0.03)
    assert chip.die_area_mm2 == pytest.approx(h100.die_area_mm2, rel=0.05)
    assert chip.n_compute_dies == 1
    doc = _evaluate(capsys, str(path))
    assert doc["feasible"]
    assert set(doc["assumed"]) == {f"chip.{k}" for k in derived}
    for k, a in why.items():
        assert doc["assumed"][f"chip.{k}"] == {"value": a.value, "reason": a.reason}
    full = _evaluate(capsys, "h100-sxm", "--no-platform")
    assert doc["step_time_s"] == pytest.approx(full["step_time_s"], rel=0.02)
    # the text output lists them too
    code, out, err = run(capsys, "evaluate", "--chip", str(path), "--workload", "llama3-8b",
                         "--n-chips", "8")
    assert code == 0, err
    assert "assumed" in out and "chip.compute_units" in out and "H100's SM size" in out


def test_explain_spec_sheet_fills_only_unknowns_with_reasons() -> None:
    base = catalog.get_chip("h100-sxm")
    for drop in (("compute_units",), ("clock_ghz", "sram_mb"), ("hbm_gen",), ("hbm_stacks",),
                 ("die_area_mm2",), ("n_compute_dies",), ("price_usd", "process_nm"),
                 ("scaleup_links", "scaleup_domain", "scaleout_gbps")):
        sheet = replace(base, id="x", **dict.fromkeys(drop))
        done, why = explain_spec_sheet(sheet)
        assert set(why) == set(drop), drop
        for f in fields(done):
            if f.name not in drop:
                assert getattr(done, f.name) == getattr(sheet, f.name), (drop, f.name)
    # with its stack count, the generation is the one whose per-stack bandwidth fits
    assert explain_spec_sheet(replace(base, id="x", hbm_gen=None))[0].hbm_gen == "HBM3"
    # with the die area, the count; with the count, the area of one die
    assert explain_spec_sheet(replace(base, id="x", n_compute_dies=None))[0].n_compute_dies == 1
    b200 = replace(catalog.get_chip("b200"), id="x", sram_mb=100.0, clock_ghz=1.9)
    assert explain_spec_sheet(b200)[0].die_area_mm2 < 858.0  # split into its two dies


def test_derived_units_take_an_sms_sram_and_links_give_the_bandwidth() -> None:
    """Units derived at H100's SM size take an SM's SRAM even for a vendor whose reference
    chip has other units (TPU v5p: 64 MB per TensorCore); links without a bandwidth give
    links x the year's link rate."""
    tpu = replace(catalog.get_chip("tpu-v5p"), id="x", compute_units=None, sram_mb=None,
                  clock_ghz=None, scaleup_gbps=None, scaleup_links=6, year=2025)
    done, why = explain_spec_sheet(tpu)
    assert done.sram_mb == pytest.approx(79.4 / 132 * done.compute_units, abs=0.05)
    assert "H100" in why["sram_mb"].reason
    assert done.scaleup_gbps == 600.0 and "6 links of 100 GB/s" in why["scaleup_gbps"].reason


def test_no_scaleup_bandwidth_means_a_domain_of_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "card.toml", '[chip]\nname = "PCIe card"\ntflops_bf16 = 400.0\n'
                  "hbm_gb = 48.0\nhbm_tbps = 0.9\ntdp_w = 300.0\n")
    chip, why = load_chip_file(path)
    assert (chip.scaleup_domain, chip.scaleup_gbps, chip.scaleup_links) == (1, 0.0, 0)
    assert {"scaleup_domain", "scaleup_gbps", "process_nm", "hbm_gen"} <= set(why)
    assert chip.process_nm == 4 and chip.hbm_gen == "HBM3"  # no year: the energy fallbacks


def test_example_file_evaluates(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _evaluate(capsys, str(EXAMPLE))
    assert doc["feasible"] and doc["chip"] == "my_accelerator"
    assert {"chip.compute_units", "chip.clock_ghz", "chip.sram_mb", "chip.die_area_mm2",
            "chip.price_usd", "chip.scaleup_links"} <= set(doc["assumed"])
    assert all(math.isfinite(doc[k]) for k in ("tokens_per_s", "tokens_per_joule",
                                                "cost_per_mtoken_usd", "chip_cost_usd"))
    assert toml_kind(EXAMPLE) == "chip"


def test_a_design_file_is_still_a_design(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "d.toml", "[design]\ncompute_units = 132\n")
    assert toml_kind(path) == "design"
    doc = run_json(capsys, "evaluate", "--chip", str(path), "--workload", "llama3-8b",
                   "--n-chips", "8", "--json")
    assert doc["chip"] == "d" and doc["assumed"] == {}


def test_resolve_chip_takes_an_id_or_a_sheet(tmp_path: Path) -> None:
    assert resolve_chip("h100-sxm") == catalog.get_chip("h100-sxm")
    assert resolve_chip(str(EXAMPLE)).name == "Acme Helios X1"
    with pytest.raises(ConfigError, match=r"--against.*chip TOML"):
        resolve_chip("h100-pcie")
    design = _write(tmp_path, "d.toml", "[design]\ncompute_units = 132\n")
    assert resolve_chip(str(design)).compute_units == 132  # a design file's chip
    neither = _write(tmp_path, "n.toml", "[desing]\ncompute_units = 132\n")
    with pytest.raises(ConfigError, match=r"did you mean"):
        resolve_chip(str(neither))


def test_compare_and_uncertainty_take_a_sheet_as_reference() -> None:
    """compare --against / pareto --against / report --against resolve the same way: the
    sheet is projected into the run's search space as a catalog chip is."""
    from codesign.results.compare import baseline_metrics, projected_design
    from codesign.results.uncertainty import baseline_designs
    from codesign.search.experiment import load_experiment

    exp = load_experiment(REPO / "experiments" / "quickstart.toml")
    _, design = projected_design(exp, str(EXAMPLE))
    chip, why = load_chip_file(EXAMPLE)
    # the assumed values travel into the projection (clamped to the quickstart space)
    assert design["sram_mb"] == why["sram_mb"].value == chip.sram_mb
    assert design["scaleup_links"] == why["scaleup_links"].value
    designs, unprojected = baseline_designs(exp, [str(EXAMPLE), "h100-sxm"])
    assert designs[str(EXAMPLE)] == design and unprojected == []
    assert baseline_metrics(exp, str(EXAMPLE))["feasible"]
    with pytest.raises(ConfigError, match="--against"):
        baseline_designs(exp, ["h100-pcie"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-trial quickstart run (a couple of seconds)."""
    from codesign.cli import main

    folder = tmp_path_factory.mktemp("sheet_run")
    text = (REPO / "experiments" / "quickstart.toml").read_text(encoding="utf-8")
    for old, new in (('"../search_spaces/quickstart.toml"',
                      json.dumps((REPO / "search_spaces" / "quickstart.toml").as_posix())),
                     ("trials = 960", "trials = 6"), ("population = 32", "population = 4")):
        assert old in text
        text = text.replace(old, new, 1)
    exp = _write(folder, "exp.toml", text)
    assert main(["search", str(exp), "--out", str(folder / "run"), "--no-progress"]) == 0
    return folder / "run"


def test_compare_and_pareto_against_a_sheet(tiny_run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    doc = run_json(capsys, "compare", str(tiny_run), "--against", str(EXAMPLE), "--format",
                   "json")
    ref = doc["baseline"]
    assert ref["id"] == str(EXAMPLE) and ref["meaning"] == "projected"
    assert ref["catalog"]["spec"]["tflops_bf16"] == 5000.0  # the sheet as written
    assert doc["best"] and all(b["improvement"] for b in doc["best"])
    doc = run_json(capsys, "pareto", str(tiny_run), "--against", str(EXAMPLE),
                   "--uncertainty", "8", "--format", "json")
    assert any(c.endswith(f"_vs_{EXAMPLE}") for c in doc["columns"])
    bad = _write(tmp_path, "bad.toml", GOOD.replace("tdp_w = 800.0\n", ""))
    for argv in (("compare", str(tiny_run), "--against", str(bad)),
                 ("pareto", str(tiny_run), "--against", str(bad), "--uncertainty", "8")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"{bad}: chip.tdp_w: expected" in err and "Traceback" not in err


# ------------------------------------------------------------------------- bad input

GOOD = ('[chip]\nname = "X"\ntflops_bf16 = 1000.0\nhbm_gb = 96.0\nhbm_tbps = 4.0\n'
        "tdp_w = 800.0\nscaleup_gbps = 900.0\n")

BAD = [  # (case, file text, key path in the message, text expected in the message)
    ("unknown-key", GOOD + "tflops_bf61 = 3.0\n", "chip.tflops_bf61",
     "did you mean 'tflops_bf16'"),
    ("unknown-key-hbm", GOOD + "hbm_bw = 3.0\n", "chip.hbm_bw", "unknown key 'hbm_bw'"),
    ("missing-name", GOOD.replace('name = "X"\n', ""), "chip.name", "required"),
    ("missing-bf16", GOOD.replace("tflops_bf16 = 1000.0\n", ""), "chip.tflops_bf16",
     "got nothing"),
    ("missing-tdp", GOOD.replace("tdp_w = 800.0\n", ""), "chip.tdp_w", "required"),
    ("missing-hbm", GOOD.replace("hbm_gb = 96.0\n", ""), "chip.hbm_gb", "required"),
    ("type-str", GOOD.replace("hbm_gb = 96.0", 'hbm_gb = "96"'), "chip.hbm_gb", "'96'"),
    ("type-int-float", GOOD + "compute_units = 132.5\n", "chip.compute_units", "an integer"),
    ("type-bool", GOOD + "year = true\n", "chip.year", "an integer"),
    ("type-name", GOOD.replace('name = "X"', "name = 7"), "chip.name", "a non-empty string"),
    ("empty-name", GOOD.replace('name = "X"', 'name = " "'), "chip.name", "non-empty"),
    ("range-bf16-negative", GOOD.replace("1000.0", "-1.0"), "chip.tflops_bf16",
     "a number in (0.0, 1000000.0]"),
    ("range-bf16-zero", GOOD.replace("1000.0", "0.0"), "chip.tflops_bf16", "(0.0,"),
    ("range-bf16-huge", GOOD.replace("1000.0", "2e6"), "chip.tflops_bf16", "2000000.0"),
    ("range-tdp", GOOD.replace("800.0", "1e6"), "chip.tdp_w", "[1.0, 30000.0]"),
    ("range-tdp-zero", GOOD.replace("800.0", "0.5"), "chip.tdp_w", "[1.0, 30000.0]"),
    ("range-nan", GOOD.replace("hbm_tbps = 4.0", "hbm_tbps = nan"), "chip.hbm_tbps", "nan"),
    ("range-clock", GOOD + "clock_ghz = 50.0\n", "chip.clock_ghz", "GHz"),
    ("range-year", GOOD + "year = 1800\n", "chip.year", "[1990, 2100]"),
    ("hbm-gen", GOOD + 'hbm_gen = "HBM5"\n', "chip.hbm_gen", "HBM4"),
    ("hbm-gen-case", GOOD + 'hbm_gen = "hbm3"\n', "chip.hbm_gen", "did you mean"),
    ("hbm-without-bandwidth", GOOD.replace("hbm_tbps = 4.0", "hbm_tbps = 0.0"),
     "chip.hbm_tbps", "hbm_gb = 96"),
    ("hbm-none-with-capacity", GOOD + 'hbm_gen = "none"\n', "chip.hbm_gen", "hbm_gb = 96"),
    ("domain-without-bandwidth", GOOD.replace("scaleup_gbps = 900.0\n", "")
     + "scaleup_domain = 72\n", "chip.scaleup_gbps", "scaleup_domain = 72"),
    ("catalog-id", GOOD + 'id = "h100-sxm"\n', "chip.id", "not a catalog chip's"),
    ("both-tables", GOOD + "\n[design]\ncompute_units = 132\n", "design", "not both"),
    ("no-table", "name = 1\n", "name", "a [chip] spec sheet"),
    ("empty-file", "", "design", "or [chip] (a spec sheet), got nothing"),
    ("chip-not-table", 'chip = "h100"\n', "chip", "a table [chip]"),
    ("misspelt-table", GOOD.replace("[chip]", "[chips]"), "chips", "did you mean 'chip'"),
    ("bad-toml", GOOD + "tdp_w = 1\n", "<toml>", "defined twice"),
]


@pytest.mark.parametrize(("text", "key", "needle"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_sheet_is_exit_2_naming_file_and_key(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 text: str, key: str, needle: str) -> None:
    path = _write(tmp_path, "sheet.toml", text)
    code, out, err = run(capsys, "evaluate", "--chip", str(path), "--workload", "llama3-8b",
                         "--json")
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path}: {key}: expected " in err, err
    assert needle in err, err


def test_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none.toml"
    code, _, err = run(capsys, "evaluate", "--chip", str(path), "--workload", "llama3-8b")
    assert code == 2 and f"{path}: <file>: expected an existing file" in err


def test_every_key_has_a_unit_and_the_required_are_keys() -> None:
    assert set(REQUIRED) <= set(CHIP_KEYS)
    assert all(k.unit for k in CHIP_KEYS.values())
    header = next(iter(_rows().values())).keys()
    assert set(CHIP_KEYS) == set(header)  # exactly chips.csv's columns
