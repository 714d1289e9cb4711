"""A long search compiles its kernels in a child process first (the compiler's memory stays
out of the searching process): the child evaluates the experiment's base design, and its
failure only means the search compiles as before."""

from pathlib import Path

from codesign.search import study as st
from codesign.search.precompile import PRECOMPILE_TRIALS, compile_elsewhere

ROOT = Path(__file__).resolve().parents[1]


def test_the_child_evaluates_the_experiment_and_reports_failure(tmp_path):
    assert compile_elsewhere(str(ROOT / "experiments" / "quickstart.toml"))
    assert compile_elsewhere(str(ROOT / "experiments" / "inference_llama70b.toml"))
    assert not compile_elsewhere(str(tmp_path / "missing.toml"))


def test_only_long_searches_use_it(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(st, "compile_elsewhere", lambda path: calls.append(path) or True)
    from codesign.search.bench_loop import engine
    from codesign.search.experiment import load_experiment

    exp = load_experiment(ROOT / "experiments" / "quickstart.toml")
    engine(exp, 32, tmp_path / "short")
    assert calls == []
    monkeypatch.setattr(st, "PRECOMPILE_TRIALS", 32)
    engine(exp, 32, tmp_path / "long")
    assert calls == [str(exp.path)] and PRECOMPILE_TRIALS == 10_000
