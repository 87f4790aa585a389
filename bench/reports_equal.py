"""Are the ``parse`` outputs of this tree identical to those of a reference commit? (speed work check)

``python -m bench.reports_equal [--ref REV] [--overlay PATH ...] [--input CSV] [--workers 0 2]``

Runs :func:`medmm.reports.pipeline.parse_reports` on the IU chest X-ray dev reports (shared data,
``text/iu_xray/indiana_reports_dev.csv``, 2,575 rows; ``--keep-text``, one throwaway site key for both
sides) with each ``--workers`` count, once with the code of ``--ref`` (a ``git worktree`` of it in a temp
folder) and once with the candidate code, each in a fresh interpreter (``PYTHONPATH``; local workers
are forked from a server that imports the same ``medmm``), and compares the four frames
(``entities``, ``report_labels``, ``report_texts``, ``manifest_reports``) with ``DataFrame.equals``.
Every candidate run is compared with the reference run of each worker count, so in-process ==
2 workers is checked too.

The candidate is this working tree; with ``--overlay PATH ...`` it is instead the reference commit with
only those paths taken from this working tree (to check one's own files while others change the rules:
their outputs then move both sides alike). Exit status 0 when every frame is equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMES = ("entities", "report_labels", "report_texts", "manifest_reports")
COLS = "indication,comparison,findings,impression"

RUN = """
import sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import medmm
from medmm.reports.pipeline import parse_reports
src, out, key, workers = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
parse_reports(Path(src), out, id_column="uid", text_columns=sys.argv[5].split(","), workers=workers,
              key_file=key, keep_text=True)
print(medmm.__file__)
"""


def _tree(rev: str, where: Path, overlay: list[str]) -> Path:
    """A worktree of ``rev`` at ``where`` with ``overlay`` paths copied from this working tree."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
        check=True,
        capture_output=True,
    )
    for rel in overlay:
        src, dst = ROOT / rel, where / rel
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        else:
            dst.unlink(missing_ok=True)
    return where


def _parse(code: Path, src: Path, out: Path, key: Path, workers: int) -> Path:
    env = {**os.environ, "PYTHONPATH": str(code)}
    got = subprocess.run(
        [sys.executable, "-c", RUN, str(src), str(out), str(key), str(workers), COLS],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(out.parent),
    )
    where = got.stdout.strip().splitlines()[-1]
    if not where.startswith(str(code)):  # the run must have used the tree it was given
        raise RuntimeError(f"medmm imported from {where}, not from {code}")
    return out


def compare(a: Path, b: Path) -> dict[str, bool]:
    """``DataFrame.equals`` of each of :data:`FRAMES` in run directories ``a`` and ``b``."""
    import pandas as pd

    return {
        f: pd.read_parquet(a / f"{f}.parquet").equals(pd.read_parquet(b / f"{f}.parquet")) for f in FRAMES
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_equal", description=__doc__)
    parser.add_argument("--ref", default="72489c6", help="reference commit (default: session 9's start)")
    parser.add_argument("--overlay", nargs="*", default=None, help="candidate = ref + these paths")
    parser.add_argument("--input", type=Path, default=None, help="reports CSV (default: IU dev reports)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args(argv)

    from medmm.datasets import shared_data_dir

    src = args.input
    if src is None:
        root = shared_data_dir()
        if root is None:
            print("shared data not found (set MEDMM_DATA)", file=sys.stderr)
            return 2
        src = root / "text" / "iu_xray" / "indiana_reports_dev.csv"
    tmp = Path(tempfile.mkdtemp(prefix="reports-equal-"))
    trees: list[Path] = []
    try:
        key = tmp / "site.key"
        key.write_text(os.urandom(32).hex() + "\n")
        ref = _tree(args.ref, tmp / "ref", [])
        trees.append(ref)
        cand = ROOT
        if args.overlay is not None:
            cand = _tree(args.ref, tmp / "cand", args.overlay)
            trees.append(cand)
        runs: dict[tuple[str, int], Path] = {}
        for w in args.workers:
            for name, code in (("ref", ref), ("candidate", cand)):
                runs[name, w] = _parse(code, src, tmp / f"{name}-w{w}", key, w)
        ok = True
        result = {}
        for wc in args.workers:
            for wr in args.workers:
                eq = compare(runs["ref", wr], runs["candidate", wc])
                result[f"candidate w{wc} vs ref w{wr}"] = eq
                ok &= all(eq.values())
        import pandas as pd

        sizes = {f: len(pd.read_parquet(runs["ref", args.workers[0]] / f"{f}.parquet")) for f in FRAMES}
        print(
            json.dumps({"ref": args.ref, "overlay": args.overlay, "rows": sizes, "equal": result}, indent=1)
        )
        print("ALL EQUAL" if ok else "DIFFERENT")
        return 0 if ok else 1
    finally:
        for t in trees:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(t)], capture_output=True
            )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
