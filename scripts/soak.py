#!/usr/bin/env python
"""Soak test of the reliability contract (DESIGN.md, "Reliability the users rely on").

Runs ``codesign`` processes on small copies of the quickstart experiment, kills them with
SIGKILL at random moments chosen by progress (after k new trial records in the storage, k
random; after k owner records while queued trials run; at the k-th file operation of an
``export``), never after a random sleep, then resumes and checks, per scenario:

    complete      COMPLETE trials in the storage
    parquet_rows  rows of the run's Parquet trial log
    duplicates    Parquet rows beyond the first of a trial number (worst seen)
    lost          COMPLETE trials missing from Parquet after the final resume
    reruns        trials re-run after a kill (``codesign:retry_of`` in the storage)
    running_left  trials still RUNNING at the end

and also trials in Parquet but not COMPLETE (phantom), killed trials never re-run, unreadable
Parquet files, commands that failed, baselines that lost their identity, and (for information)
designs proposed again. Exit 0 when every scenario run is clean, 1 on any fault, 2 on bad
arguments.

Scenarios: single (one search), workers2 (``search --workers 2``), worker3 (three ``codesign
worker`` processes on one journal), postgres (four workers on PostgreSQL; URL from --pg-url,
CODESIGN_TEST_PG_URL or CODESIGN_STORAGE_URL, skipped when none answers; scripts/postgres.sh
starts a local server), baselines (an experiment with 8 baselines, killed as soon as the
journal holds an owner record), export (``codesign export`` killed at its k-th file operation).

    python scripts/soak.py [--kills 20] [--scenario NAME ...] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # soak_harness beside this script
from soak_harness import (
    LONG,
    SCENARIOS,
    Result,
    Soak,
    SoakError,
    Storage,
    judge,
    measure,
    write_experiment,
)


def one_process(s: Soak, res: Result, kills: int, argv: list[str], storage: Storage) -> None:
    """``kills`` times: start ``argv`` (a long search), kill it on progress. A start refused
    for a torn journal (a kill mid-append) is repaired with ``codesign doctor --repair``."""
    while res.kills < kills:
        kind, k = s.trigger(storage)
        proc = s.start(*argv)
        if s.kill_on_progress(storage, kind, k, [proc]) is not None:
            res.kills += 1
            continue
        rc, tail = proc.returncode, s.tail(proc)
        if rc == 2 and "torn" in tail and "doctor" in tail:
            s.say(f"torn journal refused: {tail}")
            s.run("doctor", str(storage.journal.parent), "--repair", res=res)
            res.repaired += 1
            continue
        res.errors.append(f"{argv[0]} exit {rc} before its kill: {tail}")
        return


def scenario_single(s: Soak, res: Result, kills: int, workers: int = 1) -> None:
    name = "single" if workers == 1 else f"workers{workers}"
    exp = write_experiment(s.root, name, s.pop)
    run_dir = s.root / "runs" / name
    storage = Storage(run_dir / "study.log", study=name)
    extra = ["--workers", str(workers)] if workers > 1 else []
    s.run("search", str(exp), "--trials", str(s.pop), *extra, res=res)
    # each kill followed by a resume (``search`` again continues the study; ``resume`` has
    # no --workers)
    again = ["search", str(exp)] if workers > 1 else ["resume", str(run_dir)]
    one_process(s, res, kills, [*again, "--trials", LONG, *extra], storage)
    s.finish(*again, "--trials", str(2 * s.pop), *extra, res=res, journal=storage.journal)
    measure(res, storage, run_dir)


def scenario_baselines(s: Soak, res: Result, kills: int) -> None:
    """From a fresh run: the first kill as soon as the journal holds an owner record (a
    baseline being evaluated), then as everywhere; finally ``resume RUN --trials 2*pop``."""
    exp = write_experiment(s.root, "baselines", s.pop, baselines=True)
    run_dir = s.root / "runs" / "baselines"
    storage = Storage(run_dir / "study.log", study="baselines")
    proc = s.start("search", str(exp), "--trials", LONG)
    if s.kill_on_progress(storage, "owner", 1, [proc]) is None:
        res.errors.append(f"search exit {proc.returncode} before its kill: {s.tail(proc)}")
        return
    res.kills += 1
    one_process(s, res, kills, ["resume", str(run_dir), "--trials", LONG], storage)
    s.finish("resume", str(run_dir), "--trials", str(2 * s.pop), res=res,
             journal=storage.journal)
    measure(res, storage, run_dir)


def scenario_workers(s: Soak, res: Result, kills: int, n: int, storage: Storage,
                     argv: list[str], run_dir: Path, final: list[str]) -> None:
    """``n`` workers at once; ``kills`` times one of them (at random) is killed on progress
    and started again; the rest are killed at the end and ``final`` (alone) recovers."""
    workers = [s.start(*argv) for _ in range(n)]

    def reap(restart: bool) -> None:
        """Judge the workers that exited by themselves (a torn journal is repaired, any
        other exit is an error) and start them again."""
        for i, w in enumerate(workers):
            if w.poll() is None or w in killed:
                continue
            tail = s.tail(w)
            if w.returncode == 2 and "torn" in tail and "doctor" in tail and storage.journal:
                s.say(f"torn journal refused: {tail}")  # a kill mid-append: repair, go on
                s.run("doctor", str(storage.journal), "--repair", res=res)
                res.repaired += 1
            else:
                res.errors.append(f"worker exit {w.returncode}: {tail}")
            killed.append(w)
            if restart:
                workers[i] = s.start(*argv)

    killed: list[subprocess.Popen[bytes]] = []
    while res.kills < kills and len(res.errors) <= kills:
        reap(restart=True)
        kind, k = s.trigger(storage)
        victim = s.kill_on_progress(storage, kind, k, workers)
        if victim is not None:
            res.kills += 1
            killed.append(victim)
            workers[workers.index(victim)] = s.start(*argv)
    reap(restart=False)
    kind, k = s.trigger(storage)
    s.kill_on_progress(storage, kind, k, workers)
    for w in workers:
        s.kill(w)
    res.note = f"the {n} workers killed at the end too"
    s.finish(*final, res=res, journal=storage.journal)
    measure(res, storage, run_dir)


def scenario_worker3(s: Soak, res: Result, kills: int) -> None:
    exp = write_experiment(s.root, "worker3", s.pop)
    storage = Storage(s.root / "shared.log", study="worker3")
    common = ["worker", str(exp), "--storage", str(storage.journal), "--study", "worker3"]
    scenario_workers(s, res, kills, 3, storage, [*common, "--trials", LONG, "--out", "runs/w3"],
                     s.root / "runs" / "w3",
                     [*common, "--trials", str(2 * s.pop), "--out", "runs/w3"])


def pg_url(given: str | None) -> tuple[str | None, str]:
    """A PostgreSQL URL that answers, or None and why not."""
    url = given or os.environ.get("CODESIGN_TEST_PG_URL") or os.environ.get(
        "CODESIGN_STORAGE_URL")
    if not url or not url.startswith("postgres"):
        return None, ("no PostgreSQL URL (--pg-url, CODESIGN_TEST_PG_URL or "
                      "CODESIGN_STORAGE_URL; scripts/postgres.sh starts a local server)")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        return None, f"PostgreSQL not reachable ({type(exc).__name__}; scripts/postgres.sh " \
                     "starts a local server)"
    return url, ""


def scenario_postgres(s: Soak, res: Result, kills: int, url: str) -> None:
    name = f"soak-{uuid.uuid4().hex[:8]}"
    exp = write_experiment(s.root, "postgres", s.pop)
    storage = Storage(url=url, study=name)
    common = ["worker", str(exp), "--storage", url, "--study", name]
    scenario_workers(s, res, kills, 4, storage, [*common, "--trials", LONG, "--out", "runs/pg"],
                     s.root / "runs" / "pg",
                     [*common, "--trials", str(2 * s.pop), "--out", "runs/pg"])
    # on a database a dead worker's trials are recovered once their heartbeat is stale:
    # run the final worker again until none is left RUNNING (or a few tries)
    for _ in range(5):
        if not res.running_left or res.errors:
            break
        s.say(f"{res.running_left} RUNNING: another final worker once their heartbeat is stale")
        time.sleep(2 * int(s.env.get("CODESIGN_HEARTBEAT_S", "60")))
        s.run(*common, "--trials", str(s.pop), "--out", "runs/pg", res=res)
        measure(res, storage, s.root / "runs" / "pg")


def scenario_export(s: Soak, res: Result, kills: int) -> None:
    """``kills`` times: a clean resume of one population, then ``codesign export`` killed
    right after its k-th rename/unlink in the run directory (k random); the Parquet log is
    measured as the user then finds it. Finally a resume."""
    exp = write_experiment(s.root, "export", s.pop)
    run_dir = s.root / "runs" / "export"
    storage = Storage(run_dir / "study.log", study="export")
    s.run("search", str(exp), "--trials", str(2 * s.pop), res=res)
    for _ in range(kills):
        s.run("resume", str(run_dir), "--trials", str(s.pop), res=res)
        ops = len(list((run_dir / "trials").glob("*.parquet"))) + 2  # new file, old, front
        k = s.rng.randint(1, ops)
        rc = s.run("export", str(run_dir), res=res, crash=f"{run_dir}:{k}")
        res.kills += rc == -signal.SIGKILL
        s.say(f"export killed after file operation {k} of {ops} (exit {rc})")
        measure(res, storage, run_dir)  # keeps the worst duplicates seen
    s.run("resume", str(run_dir), "--trials", str(s.pop), res=res)
    measure(res, storage, run_dir)
    res.note = "duplicates: worst seen after a killed export"


def run_scenario(name: str, args: argparse.Namespace, root: Path, seed: int) -> Result:
    res = Result(name)
    t0 = time.monotonic()
    env = {}
    url = None
    if name == "postgres":
        url, why = pg_url(args.pg_url)
        if url is None:
            res.status, res.note = "skipped", why
            return res
        env["CODESIGN_HEARTBEAT_S"] = "10"  # dead workers' trials recovered after 20 s
    s = Soak(root / name, random.Random(seed), args.population, args.timeout,
             not args.quiet, env)
    print(f"{name}: {args.kills} kills ...", file=sys.stderr, flush=True)
    try:
        if name == "single":
            scenario_single(s, res, args.kills)
        elif name == "workers2":
            scenario_single(s, res, args.kills, workers=2)
        elif name == "worker3":
            scenario_worker3(s, res, args.kills)
        elif name == "postgres":
            scenario_postgres(s, res, args.kills, url)
        elif name == "baselines":
            scenario_baselines(s, res, args.kills)
        elif name == "export":
            scenario_export(s, res, args.kills)
    except SoakError as exc:
        res.errors.append(str(exc))
    finally:
        s.cleanup()
    res.lock_takeovers = sum(f.read_text(errors="replace").count("Forcibly releasing the lock")
                             for f in (s.root / "logs").glob("*.log"))
    judge(res)
    res.seconds = round(time.monotonic() - t0, 1)
    return res


COLUMNS = ("kills", "complete", "parquet_rows", "duplicates", "lost", "reruns", "running_left")


def print_table(results: list[Result]) -> None:
    head = f"{'scenario':<10} " + " ".join(f"{c:>12}" for c in COLUMNS) + "  status"
    print(head)
    for r in results:
        if r.status == "skipped":
            print(f"{r.name:<10} skipped: {r.note}")
            continue
        cells = " ".join(f"{getattr(r, c):>12}" for c in COLUMNS)
        print(f"{r.name:<10} {cells}  {r.status}")
        for f in r.faults:
            print(f"{'':<10} fault: {f}")
        for e in r.errors[:5]:
            print(f"{'':<10} error: {e}")
        extra = (f"repeated designs {r.repeated_designs}, torn journals repaired {r.repaired}, "
                 f"dead writers' journal locks taken over {r.lock_takeovers}, {r.seconds:.0f} s")
        print(f"{'':<10} {extra}{'; ' + r.note if r.note else ''}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="kills per scenario (default 20)")
    p.add_argument("--scenario", action="append", choices=SCENARIOS,
                   help="run only these (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0,
                   help="safety timeout of every wait, s: reaching it is a hang (default 600)")
    p.add_argument("--pg-url", help="PostgreSQL URL of the postgres scenario")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    p.add_argument("--quiet", action="store_true", help="no line per kill on stderr")
    args = p.parse_args(argv)
    if args.kills < 1 or args.population < 1:
        p.error("--kills and --population must be >= 1")
    names = list(dict.fromkeys(args.scenario or SCENARIOS))
    root = Path(tempfile.mkdtemp(prefix="codesign-soak-"))
    results = [run_scenario(n, args, root, args.seed + i) for i, n in enumerate(names)]
    ok = all(r.status != "fault" for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "kills": args.kills, "population": args.population,
                          "scenarios": [vars(r) for r in results]}))
    else:
        print_table(results)
    if args.keep:
        print(f"run directories kept in {root}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
