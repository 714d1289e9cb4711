"""codesign.search.experiment: every bad input is a ConfigError naming file, key, expected and
got."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from codesign.errors import ConfigError
from codesign.model.catalog import get_model
from codesign.search.design import DEFAULT_DESIGN
from codesign.search.experiment import (
    Constraint,
    Objective,
    ParamSpec,
    load_experiment,
    load_search_space,
)

REPO = Path(__file__).resolve().parents[1]

SPACE = """\
[space]
name = "tiny"
description = "test space"

[base]
process_nm = 4
hbm_gen = "HBM3e"

[params.compute_units]
type = "int"
low = 64
high = 256
step = 8

[params.clock_ghz]
type = "float"
low = 1.0
high = 2.0

[params.hbm_stacks]
type = "categorical"
choices = [4, 6, 8]

[params.sram_mb]
type = "int"
low = 16
high = 512
log = true
"""

EXPERIMENT = """\
[experiment]
name = "tiny"
description = "test experiment"
search_space = "space.toml"
baselines = ["h100-sxm"]

[workload]
kind = "train"
model = "llama3-8b"
seq_len = 4096
global_batch = 256
precision = "bf16"

[cluster]
n_chips = 1024
pue = 1.3

[objectives]
tokens_per_s = "maximize"
die_area_mm2 = "minimize"

[constraints]
die_area_mm2 = { max = 858 }

[budget]
trials = 200

[search]
sampler = "nsga2"
seed = 0
population = 32

[storage]
url = "sqlite:///x.db"
"""

INLINE_MODEL = (
    'model = { name = "toy", layers = 4, hidden = 128, heads = 4, kv_heads = 2, '
    "ffn_hidden = 512, vocab = 1000 }"
)


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"test bug: {old!r} not in the template"
    return text.replace(old, new, 1)


def write(tmp_path: Path, exp: tuple[str, str] | None = None,
          space: tuple[str, str] | None = None) -> Path:
    """Write the valid experiment + space into tmp_path, each optionally with one (old, new)
    edit; return the experiment path. Lone surrogates (\\udcXX) become raw bytes 0xXX."""
    exp_text = edit(EXPERIMENT, *exp) if exp else EXPERIMENT
    space_text = edit(SPACE, *space) if space else SPACE
    (tmp_path / "space.toml").write_bytes(space_text.encode("utf-8", "surrogateescape"))
    path = tmp_path / "exp.toml"
    path.write_bytes(exp_text.encode("utf-8", "surrogateescape"))
    return path


# ----------------------------------------------------------------------------- bad inputs


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # "exp" or "space": which template is edited (and named in the error)
    old: str
    new: str
    key: str
    expected: str
    got: str


CASES = [
    Case("syntax", "exp", "trials = 200", "trials = ", "<toml>", "valid TOML",
         "Invalid value (at line 26, column 10)"),
    Case("duplicate-key", "exp", 'die_area_mm2 = "minimize"',
         'die_area_mm2 = "minimize"\ntokens_per_s = "minimize"', "<toml>", "valid TOML",
         "Cannot overwrite a value (at line 21, column 26) (a key or table is defined twice)"),
    Case("non-utf8", "exp", 'description = "test experiment"', 'description = "caf\udce9"',
         "<file>", "UTF-8 text", "byte 0xe9 at line 3"),
    Case("non-utf8-space", "space", 'description = "test space"', 'description = "\udcff"',
         "<file>", "UTF-8 text", "byte 0xff at line 3"),
    Case("unknown-key", "exp", "population = 32", "popualtion = 32", "search.popualtion",
         "one of: sampler, seed, population (did you mean 'population'?)",
         "unknown key 'popualtion'"),
    Case("unknown-key-space", "space", "step = 8", "stpe = 8", "params.compute_units.stpe",
         "did you mean 'step'?", "unknown key 'stpe'"),
    Case("unknown-section", "exp", "[budget]", "[budgte]", "budgte",
         "did you mean 'budget'?", "unknown key 'budgte'"),
    Case("unknown-param", "space", "[params.clock_ghz]", "[params.clock_hz]",
         "params.clock_hz", "did you mean 'clock_ghz'?", "unknown key 'clock_hz'"),
    Case("wrong-type", "exp", "seq_len = 4096", 'seq_len = "4096"', "workload.seq_len",
         "an integer in [1, 16777216]", "'4096'"),
    Case("bool-as-int", "exp", "trials = 200", "trials = true", "budget.trials",
         "an integer >= 1", "True"),
    Case("not-finite", "space", "low = 1.0", "low = nan", "params.clock_ghz.low",
         "a number in [0.2, 4.0]", "nan"),
    Case("out-of-range", "space", "high = 256", "high = 5000", "params.compute_units.high",
         "an integer in [1, 4096]", "5000"),
    Case("out-of-range-base", "space", "process_nm = 4", "process_nm = 6", "base.process_nm",
         "one of: 7, 5, 4, 3, 2", "6"),
    Case("out-of-range-cluster", "exp", "pue = 1.3", "pue = 0.5", "cluster.pue",
         "a number in [1.0, 3.0]", "0.5"),
    Case("low-gt-high", "space", "low = 64", "low = 300", "params.compute_units",
         "`low <= high` must hold", "(low=300, high=256)"),
    Case("step-zero", "space", "step = 8", "step = 0", "params.compute_units.step",
         "an integer > 0", "0"),
    Case("float-type-for-int", "space", 'type = "int"\nlow = 64', 'type = "float"\nlow = 64',
         "params.compute_units.type",
         "one of: int, categorical (compute_units is an integer parameter)", "'float'"),
    Case("log-low-zero", "space", '[params.sram_mb]\ntype = "int"\nlow = 16\nhigh = 512',
         '[params.scaleup_links]\ntype = "int"\nlow = 0\nhigh = 64', "params.scaleup_links.low",
         "a value > 0 when log = true", "0"),
    Case("log-with-step", "space", "log = true", "log = true\nstep = 2", "params.sram_mb.step",
         "no step when log = true", "2"),
    Case("missing-section", "exp",
         '[objectives]\ntokens_per_s = "maximize"\ndie_area_mm2 = "minimize"\n', "",
         "objectives", "a table [objectives]", "nothing"),
    Case("missing-section-space", "space", '[space]\nname = "tiny"\ndescription = "test space"\n',
         "", "space", "a table [space]", "nothing"),
    Case("missing-key", "exp", "seq_len = 4096\n", "", "workload.seq_len",
         "an integer in [1, 16777216]", "nothing"),
    Case("empty-choices", "space", "choices = [4, 6, 8]", "choices = []",
         "params.hbm_stacks.choices", "a non-empty array of values", "[]"),
    Case("duplicate-choices", "space", "choices = [4, 6, 8]", "choices = [4, 6, 4]",
         "params.hbm_stacks.choices[2]", "no duplicates (same as choices[0])",
         "4"),
    Case("choice-out-of-range", "space", "choices = [4, 6, 8]", "choices = [4, 6, 32]",
         "params.hbm_stacks.choices[2]", "an integer in [1, 16]", "32"),
    Case("base-and-params", "space", "[base]\n", "[base]\ncompute_units = 128\n",
         "params.compute_units", "each parameter in [base] or [params], not both",
         "also in [base] (compute_units = 128)"),
    Case("unknown-model", "exp", 'model = "llama3-8b"', 'model = "llama3-7b"', "workload.model",
         "a catalog model id (one of: gpt3-175b, mtnlg-530b, llama3-8b", "'llama3-7b'"),
    Case("inline-model-heads", "exp", 'model = "llama3-8b"', INLINE_MODEL.replace(
        "heads = 4,", "heads = 3,"), "workload.model.heads", "a divisor of hidden (128)", "3"),
    Case("inline-model-moe", "exp", 'model = "llama3-8b"', INLINE_MODEL.replace(
        " }", ", moe_experts = 8, moe_topk = 9, moe_ffn_hidden = 64 }"),
         "workload.model.moe_topk", "an integer <= moe_experts (8)", "9"),
    Case("workload-kind", "exp", 'kind = "train"', 'kind = "serve"', "workload.kind",
         "one of: train, infer", "'serve'"),
    Case("bad-precision", "exp", 'precision = "bf16"', 'precision = "int8"',
         "workload.precision", "one of: fp32, fp16, bf16, fp8, fp4", "'int8'"),
    Case("unknown-metric", "exp", 'die_area_mm2 = "minimize"', 'die_area_mm = "minimize"',
         "objectives.die_area_mm", "did you mean 'die_area_mm2'?", "unknown key 'die_area_mm'"),
    Case("bad-direction", "exp", 'tokens_per_s = "maximize"', 'tokens_per_s = "maximise"',
         "objectives.tokens_per_s", "one of: maximize, minimize (did you mean 'maximize'?)",
         "'maximise'"),
    Case("constraint-min-gt-max", "exp", "{ max = 858 }", "{ min = 900, max = 858 }",
         "constraints.die_area_mm2", "`min <= max` must hold", "(min=900.0, max=858.0)"),
    Case("constraint-empty", "exp", "{ max = 858 }", "{ }", "constraints.die_area_mm2",
         "at least one of min, max", "{}"),
    Case("bad-sampler", "exp", 'sampler = "nsga2"', 'sampler = "cmaes"', "search.sampler",
         "one of: nsga2, nsga3, tpe, gp, random", "'cmaes'"),
    Case("negative-seed", "exp", "seed = 0", "seed = -1", "search.seed",
         "an integer in [0, 4294967295]", "-1"),
    Case("unknown-baseline", "exp", 'baselines = ["h100-sxm"]',
         'baselines = ["h100-sxm", "h100-pcie"]', "experiment.baselines[1]",
         "one of: a100-sxm-80gb", "'h100-pcie'"),
    Case("password-in-url", "exp", 'url = "sqlite:///x.db"',
         'url = "postgresql://alice:s3cret@db.example/codesign"', "storage.url",
         "no password in the file (use --storage or CODESIGN_STORAGE_URL)",
         "postgresql://alice:***@db.example/codesign"),
    Case("bad-url", "exp", 'url = "sqlite:///x.db"', 'url = "x.db"', "storage.url",
         "a URL starting with sqlite:///", "'x.db'"),
    Case("bad-experiment-name", "exp", 'name = "tiny"', 'name = "../tiny"', "experiment.name",
         "it becomes a directory name", "'../tiny'"),
    Case("missing-search-space", "exp", 'search_space = "space.toml"',
         'search_space = "nope.toml"', "experiment.search_space", "a search space file",
         "'nope.toml'"),
    Case("n-chips-required", "exp", "n_chips = 1024\n", "", "cluster.n_chips",
         "required here unless the search space sets n_chips", "nothing"),
    Case("n-chips-twice", "exp", "[search]", "[search]", "cluster.n_chips",
         "no value here: the search space", "1024"),  # space edited in the test below
]
CASE_BY_ID = {case.id: case for case in CASES}


def write_case(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    """Write the files of ``case``; return (experiment path, path of the file in error)."""
    if case.id == "n-chips-twice":
        exp = write(tmp_path, space=("[base]\n", "[base]\nn_chips = 512\n"))
        return exp, exp
    edit_ = (case.old, case.new)
    exp = write(tmp_path, exp=edit_) if case.file == "exp" else write(tmp_path, space=edit_)
    return exp, exp if case.file == "exp" else tmp_path / "space.toml"


def assert_message(err: ConfigError, file: Path, case: Case) -> None:
    msg = str(err)
    assert msg.startswith(f"{file}: {case.key}: expected "), msg
    assert err.key == case.key
    assert case.expected in msg, msg
    assert msg.endswith(f", got {case.got}"), msg


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_file_key_expected_got(tmp_path: Path, case: Case) -> None:
    exp, bad_file = write_case(tmp_path, case)
    with pytest.raises(ConfigError) as info:
        load_experiment(exp)
    assert_message(info.value, bad_file, case)


def test_password_is_not_echoed(tmp_path: Path) -> None:
    exp, _ = write_case(tmp_path, CASE_BY_ID["password-in-url"])
    with pytest.raises(ConfigError) as info:
        load_experiment(exp)
    assert "s3cret" not in str(info.value)


def test_space_errors_also_come_from_load_search_space(tmp_path: Path) -> None:
    write(tmp_path, space=("low = 64", "low = 300"))
    with pytest.raises(ConfigError, match=r"space\.toml: params\.compute_units: expected "
                                          r"`low <= high` must hold, got \(low=300, high=256\)"):
        load_search_space(tmp_path / "space.toml")


@pytest.mark.parametrize("loader", [load_experiment, load_search_space])
def test_missing_file(tmp_path: Path, loader) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        loader(path)
    assert str(info.value) == f"{path}: <file>: expected an existing file, got no such file"


def test_config_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_experiment(tmp_path / "nope.toml")


# ----------------------------------------------------------------------------- good inputs


def test_valid_experiment_loads(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path))
    assert exp.path == str(tmp_path / "exp.toml")
    assert exp.text == EXPERIMENT
    assert (exp.name, exp.description) == ("tiny", "test experiment")
    assert exp.job.model == get_model("llama3-8b")
    assert (exp.job.seq_len, exp.job.global_batch, exp.job.precision) == (4096, 256, "bf16")
    assert exp.cluster == {"n_chips": 1024, "pue": 1.3}
    assert exp.objectives == (Objective("tokens_per_s", "maximize"),
                              Objective("die_area_mm2", "minimize"))
    assert exp.constraints == (Constraint("die_area_mm2", None, 858.0),)
    assert (exp.trials, exp.sampler, exp.seed, exp.population) == (200, "nsga2", 0, 32)
    assert exp.storage_url == "sqlite:///x.db"
    assert exp.baselines == ("h100-sxm",)
    assert exp.space.name == "tiny"
    assert exp.space.params == (
        ParamSpec("compute_units", "int", 64, 256, 8),
        ParamSpec("clock_ghz", "float", 1.0, 2.0, None),
        ParamSpec("hbm_stacks", "categorical", choices=(4, 6, 8)),
        ParamSpec("sram_mb", "int", 16, 512, 1, log=True),
    )


def test_defaults_of_optional_sections(tmp_path: Path) -> None:
    text = EXPERIMENT.split("[constraints]")[0]
    text = edit(text, 'baselines = ["h100-sxm"]\n', "")
    text = edit(text, 'precision = "bf16"\n', "")
    write(tmp_path)
    (tmp_path / "exp.toml").write_text(text, encoding="utf-8")
    exp = load_experiment(tmp_path / "exp.toml")
    assert exp.constraints == ()
    assert (exp.trials, exp.sampler, exp.seed, exp.population) == (100, "nsga2", 0, 32)
    assert exp.storage_url is None
    assert exp.baselines == ()
    assert exp.job.precision == "bf16"


def test_base_merges_default_design(tmp_path: Path) -> None:
    write(tmp_path)
    base = load_search_space(tmp_path / "space.toml").base
    assert base.keys() == DEFAULT_DESIGN.keys()
    assert base["hbm_gen"] == "HBM3e"
    assert base["process_nm"] == 4 and isinstance(base["process_nm"], float)
    assert {k: v for k, v in base.items() if k != "hbm_gen"} == {
        k: v for k, v in DEFAULT_DESIGN.items() if k != "hbm_gen"}


def test_int_is_accepted_for_float(tmp_path: Path) -> None:
    write(tmp_path, space=("low = 1.0\nhigh = 2.0", "low = 1\nhigh = 2"))
    clock = load_search_space(tmp_path / "space.toml").params[1]
    assert (clock.low, clock.high) == (1.0, 2.0)
    assert isinstance(clock.low, float)


def test_inline_model(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, exp=('model = "llama3-8b"', INLINE_MODEL)))
    model = exp.job.model
    assert (model.name, model.layers, model.hidden, model.kv_heads) == ("toy", 4, 128, 2)
    assert model.gated_mlp is True and model.moe_experts == 0 and model.kv_latent_dim == 0
    mla = INLINE_MODEL.replace("vocab = 1000 }", "vocab = 1000, kv_latent_dim = 96 }")
    exp = load_experiment(write(tmp_path, exp=('model = "llama3-8b"', mla)))
    assert exp.job.model.kv_latent_dim == 96  # multi-head latent attention's cache width


def test_n_chips_may_come_from_the_space(tmp_path: Path) -> None:
    path = write(tmp_path, exp=("n_chips = 1024\n", ""),
                 space=("[params.sram_mb]", '[params.n_chips]\ntype = "int"\nlow = 256\n'
                                            'high = 4096\nlog = true\n\n[params.sram_mb]'))
    exp = load_experiment(path)
    assert "n_chips" not in exp.cluster
    assert exp.space.params[-2].name == "n_chips"


def test_search_space_is_relative_to_the_experiment(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "tiny.toml").write_text(SPACE, encoding="utf-8")
    path = tmp_path / "experiments" / "tiny.toml"
    path.write_text(edit(EXPERIMENT, '"space.toml"', '"../search_spaces/tiny.toml"'),
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path / "experiments")
    assert load_experiment(path).space.params[0].name == "compute_units"


def test_fingerprint(tmp_path: Path) -> None:
    first = load_experiment(write(tmp_path)).fingerprint()
    assert first == load_experiment(write(tmp_path)).fingerprint()
    assert len(first) == 64 and int(first, 16) >= 0

    # budget, seed, sampler and storage may change on resume: same problem
    for old, new in [("trials = 200", "trials = 5"), ("seed = 0", "seed = 7"),
                     ('"nsga2"', '"tpe"'), ("sqlite:///x.db", "other.log")]:
        assert load_experiment(write(tmp_path, exp=(old, new))).fingerprint() == first, old
    # int vs float spelling of the same value: same problem
    same = write(tmp_path, space=("low = 1.0", "low = 1"))
    assert load_experiment(same).fingerprint() == first

    # the space, objectives, constraints, workload and cluster define the problem
    changes = [("space", ("high = 256", "high = 248")),
               ("space", ('hbm_gen = "HBM3e"', 'hbm_gen = "HBM3"')),
               ("exp", ('"minimize"', '"maximize"')),
               ("exp", ("max = 858", "max = 800")),
               ("exp", ("seq_len = 4096", "seq_len = 8192")),
               ("exp", ("pue = 1.3", "pue = 1.4"))]
    for which, change in changes:
        path = write(tmp_path, **{which: change})
        assert load_experiment(path).fingerprint() != first, change


def test_space_fingerprint_ignores_name_and_param_order(tmp_path: Path) -> None:
    write(tmp_path)
    first = load_search_space(tmp_path / "space.toml").fingerprint()
    moved = SPACE.replace('name = "tiny"', 'name = "other"')
    block = '[params.compute_units]\ntype = "int"\nlow = 64\nhigh = 256\nstep = 8\n\n'
    moved = moved.replace(block, "") + "\n" + block
    (tmp_path / "space.toml").write_text(moved, encoding="utf-8")
    space = load_search_space(tmp_path / "space.toml")
    assert space.params[-1].name == "compute_units"
    assert space.fingerprint() == first


SHIPPED_EXPERIMENTS = sorted((REPO / "experiments").glob("*.toml"))
SHIPPED_SPACES = sorted((REPO / "search_spaces").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_EXPERIMENTS, ids=[p.name for p in SHIPPED_EXPERIMENTS])
def test_shipped_experiments_load(path: Path) -> None:
    exp = load_experiment(path)
    assert exp.objectives and exp.space.params


@pytest.mark.parametrize("path", SHIPPED_SPACES, ids=[p.name for p in SHIPPED_SPACES])
def test_shipped_search_spaces_load(path: Path) -> None:
    assert load_search_space(path).params


# ----------------------------------------------------------------------------- CLI contract

CLI_CASES = ["syntax", "unknown-key", "low-gt-high", "non-utf8", "missing-section",
             "empty-choices", "out-of-range", "wrong-type"]


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_bad_input_exits_2_and_touches_nothing(tmp_path: Path, monkeypatch, capsys,
                                                   case_id: str) -> None:
    cli = pytest.importorskip("codesign.cli", reason="codesign.cli is not written yet")
    if not hasattr(cli, "main"):
        pytest.skip("codesign.cli.main is not written yet")
    case = CASE_BY_ID[case_id]
    exp, bad_file = write_case(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["search", str(exp), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert bad_file.name in err and case.key in err, err
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "runs").exists()


def test_a_later_parameter_at_its_neutral_value_keeps_the_fingerprint() -> None:
    """``power_limit`` came after the first runs: a space that leaves it at 1 (no limit below
    the sustained peak) fingerprints as before it existed, so those runs resume; any other
    value is a different problem."""
    from dataclasses import replace as dc_replace

    from codesign.search.experiment import load_search_space

    repo = Path(__file__).resolve().parents[1]
    space = load_search_space(repo / "search_spaces" / "quickstart.toml")
    assert space.base["power_limit"] == 1.0
    before = dc_replace(space, base={k: v for k, v in space.base.items() if k != "power_limit"})
    assert space.fingerprint() == before.fingerprint()
    limited = dc_replace(space, base={**space.base, "power_limit": 0.8})
    assert limited.fingerprint() != space.fingerprint()
