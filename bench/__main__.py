"""Run every benchmark (``python -m bench [NAME ...] [--quick]``); results go to ``bench/results/``.

Each ``bench/bench_<name>.py`` defines ``run(out_dir: Path, quick: bool) -> dict`` that measures medmm
against a named baseline in the same run and returns a JSON-able summary (it also prints a table).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*names, []], help=f"benchmarks (default all: {names})")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    args = parser.parse_args(argv)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for name in args.names or names:
        print(f"\n=== bench {name} ===", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        try:
            summary = module.run(out_dir / name, args.quick)
        except Exception as exc:  # report and go on with the other benchmarks
            print(f"bench {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        (out_dir / f"{name}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"-> {out_dir / f'{name}.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
