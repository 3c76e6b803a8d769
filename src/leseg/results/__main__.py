"""``python -m leseg.results <page> [options] [hydra overrides]``: run a results page's jobs, then
write the page.

The page config is ``conf/results/<page>.yaml`` (experiments, label splits, seeds, budget
overrides, the steps they need, the page's kind and output file). Every job is one ``train.py``
run into ``<sweep dir>/<entry>/<split>/seed<k>``, every step (pretraining, export, offline stage)
runs into ``<sweep dir>/steps/<name>/seed<k>``; finished ones are skipped, so
rerunning the same command resumes an interrupted sweep and then rewrites the page. Extra
``key=value`` arguments are Hydra overrides for every job and are part of the command the page
records.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from leseg.results.jobs import REPO, run_jobs
from leseg.results.pages import build_jobs, build_steps, load_page, render_page


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(prog="python -m leseg.results", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", help="conf/results/<page>.yaml (name or path)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job")
    parser.add_argument("--lanes", type=int, default=None,
                        help="parallel training processes (default: the page's lanes, else 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per lane (default: cores // lanes)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the page's)")
    parser.add_argument("--sweep-dir", type=Path, default=None,
                        help="run directory (default outputs/results/<page>)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the page here instead of the config's `out` (smoke runs: "
                             "never overwrite docs/results with a shortened budget)")
    parser.add_argument("--skip-train", action="store_true",
                        help="write the page from the runs that exist, train nothing")
    parser.add_argument("--partial", action="store_true",
                        help="write the page even when runs are missing (it says which)")
    parser.add_argument("--dry-run", action="store_true", help="print the unfinished jobs' commands")
    args = parser.parse_intermixed_args(argv)

    page, cfg = load_page(args.page)
    if args.out is not None:
        cfg.out = str(args.out.resolve())
    if args.seeds is not None:
        cfg.seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    sweep_dir = args.sweep_dir or REPO / "outputs" / "results" / page
    lanes = args.lanes or int(cfg.get("lanes", 1))
    jobs = build_jobs(cfg)
    if not args.skip_train:
        run_jobs(jobs, sweep_dir, lanes=lanes, extra=args.overrides, dry_run=args.dry_run,
                 make_splits=cfg.get("make_splits"), steps=build_steps(cfg),
                 threads=args.threads)
        if args.dry_run:
            return None
    parts = ["python -m leseg.results", page]
    if args.seeds is not None:
        parts.append(f"--seeds {args.seeds}")
    parts += [shlex.quote(o) for o in args.overrides]
    path = render_page(page, cfg, sweep_dir, " ".join(parts), partial=args.partial)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    sys.exit(0 if main() is not False else 1)
