"""Run every bench/*_bench.py in turn (each with its default options) and summarise.

    .venv/bin/python bench/run_all.py [--only customers,invoices] [--list]

Each script runs in its own process with this environment plus, when unset, the defaults the
benches document (DATABASE_URL on the local PostgreSQL, CELERY_BROKER_URL on Redis DB 9). Lines
starting with "FIGURE" are collected and printed again at the end. Exit status: 0 when every
script exited 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names, e.g. customers,jobs")
    parser.add_argument("--list", action="store_true", help="list the scripts and stop")
    args = parser.parse_args()
    scripts = sorted(BENCH.glob("*_bench.py"))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        scripts = [s for s in scripts if s.stem.removesuffix("_bench") in wanted]
    if args.list:
        print("\n".join(str(s.relative_to(ROOT)) for s in scripts))
        return 0
    env = {**DEFAULT_ENV, **os.environ}
    results: list[tuple[str, int, float, list[str]]] = []
    for script in scripts:
        print(f"\n===== {script.relative_to(ROOT)} =====", flush=True)
        started = time.perf_counter()
        figures: list[str] = []
        process = subprocess.Popen(  # noqa: S603 - our own scripts
            [sys.executable, str(script)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("FIGURE"):
                figures.append(line.rstrip())
        code = process.wait()
        results.append((script.name, code, time.perf_counter() - started, figures))
    print("\n===== summary =====")
    for name, code, seconds, figures in results:
        print(f"{name}: exit {code} in {seconds:.0f} s")
        for figure in figures:
            print(f"  {figure}")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
