"""leseg.results: page configs, jobs that skip finished runs, and pages computed from metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from leseg.results import jobs as jobs_mod
from leseg.results.jobs import Job, JobFailed, run_jobs
from leseg.results.pages import PageConfigError, build_jobs, build_steps, load_page, render_page

METHODS_PAGE = """
kind: methods
title: Toy comparison
out: {out}
metric: test/mIoU
seeds: [0, 1]
overrides: [trainer.max_epochs=3]
supervised:
  few: {{experiment: sup_semi, split: 20}}
  full: {{experiment: sup, split: full}}
methods:
  - {{experiment: s4mc, split: 20, label: S4MC, paper: "+6.9 (not comparable)"}}
"""


def _metrics(run_dir: Path, value: float, **extra: float) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(
        {"experiment": run_dir.parts[-3], "data": "toy", "split": run_dir.parts[-2],
         "seed": int(run_dir.name[4:]), "metrics": {"test/mIoU": value, **extra}}))


def _page(tmp_path: Path, text: str = METHODS_PAGE) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(text.format(out=tmp_path / "toy.md"))
    return path


def test_methods_page_reports_the_paired_share_of_the_gap(tmp_path: Path) -> None:
    """few 40/42, all 60/58, S4MC 45/50 → differences +5/+8 (6.50 ± 2.12 points), gaps 20/16
    (18.00 ± 2.83), shares 25 %/50 % (37.5 ± 17.7 %), all by hand."""
    page, cfg = load_page(_page(tmp_path))
    sweep = tmp_path / "sweep"
    for name, split, vals in (("sup_semi", "20", (0.40, 0.42)), ("sup", "full", (0.60, 0.58)),
                              ("s4mc", "20", (0.45, 0.50))):
        for seed, v in enumerate(vals):
            _metrics(sweep / name / split / f"seed{seed}", v, **{"test/IoU/road": v})
            if name == "s4mc":  # metrics.json records the evaluated network of a mean teacher
                path = sweep / name / split / f"seed{seed}" / "metrics.json"
                path.write_text(json.dumps({**json.loads(path.read_text()), "eval_net": "teacher"}))
    out = render_page(page, cfg, sweep, "python -m leseg.results toy")
    text = out.read_text()
    assert "+18.00 ± 2.83 points" in text
    assert ("| S4MC (evaluates the teacher) | +6.50 ± 2.12 | +37.5 ± 17.7 | beats the few-label "
            "baseline | +6.9 (not comparable) |") in text
    assert "| S4MC | 20 | 47.50 ± 3.54 | 45.00 | 50.00 |" in text
    assert (tmp_path / "toy_per_class.png").stat().st_size > 0
    assert "python -m leseg.results toy" in text


def test_a_method_below_the_baseline_is_said_to_lose(tmp_path: Path) -> None:
    page, cfg = load_page(_page(tmp_path))
    sweep = tmp_path / "sweep"
    for name, split, v in (("sup_semi", "20", 0.40), ("sup", "full", 0.60), ("s4mc", "20", 0.35)):
        for seed in (0, 1):
            _metrics(sweep / name / split / f"seed{seed}", v)
    text = render_page(page, cfg, sweep, "cmd").read_text()
    assert "| S4MC | -5.00 ± 0.00 | -25.0 ± 0.0 | LOSES to the few-label baseline |" in text


def test_missing_runs_refuse_the_page_unless_partial(tmp_path: Path) -> None:
    page, cfg = load_page(_page(tmp_path))
    sweep = tmp_path / "sweep"
    _metrics(sweep / "sup_semi" / "20" / "seed0", 0.4)
    with pytest.raises(FileNotFoundError, match=r"5 run\(s\) without test/mIoU.*sup full seed 0"):
        render_page(page, cfg, sweep, "cmd")
    text = render_page(page, cfg, sweep, "cmd", partial=True).read_text()
    assert "Partial page: 5 run(s) missing" in text
    assert not (tmp_path / "toy.md.tmp").exists()


def test_curve_page_states_the_gap_and_whether_it_is_label_limited(tmp_path: Path) -> None:
    text = """
kind: curve
title: Toy curve
out: {out}
metric: test/mIoU
seeds: [0, 1]
curve:
  experiment: sup
  splits: [23, 92, full]
  labelled: {{"23": 23, "92": 92, full: 367}}
  few: 23
  full: full
  min_gap: 10
"""
    page, cfg = load_page(_page(tmp_path, text))
    sweep = tmp_path / "sweep"
    assert [(j.split, j.seed) for j in build_jobs(cfg)] == [
        ("23", 0), ("full", 0), ("23", 1), ("full", 1), ("92", 0), ("92", 1)]  # the ends first
    for split, vals in (("23", (0.30, 0.34)), ("92", (0.40, 0.41)), ("full", (0.45, 0.47))):
        for seed, v in enumerate(vals):
            _metrics(sweep / "sup" / split / f"seed{seed}", v)
    out = render_page(page, cfg, sweep, "cmd").read_text()
    assert "| 367 | full | 46.00 ± 1.41 | 45.00 | 47.00 |" in out
    assert "+14.00 ± 1.41 points → label-limited" in out  # gaps 15 and 13
    assert (tmp_path / "toy.png").stat().st_size > 0
    for seed in (0, 1):
        _metrics(sweep / "sup" / "full" / f"seed{seed}", 0.35)
    assert "NOT label-limited" in render_page(page, cfg, sweep, "cmd").read_text()


def test_page_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(PageConfigError, match=r"toy.yaml: missing key 'seeds'"):
        load_page(_page(tmp_path, "kind: curve\ntitle: t\nout: {out}\nmetric: m\n"))
    with pytest.raises(PageConfigError, match="kind must be one of"):
        load_page(_page(tmp_path, "kind: plot\n"))
    bad = METHODS_PAGE.replace("few: {{experiment: sup_semi, split: 20}}",
                               "few: {{experiment: sup_semi}}")
    with pytest.raises(PageConfigError, match=r"supervised.few: missing key 'split'"):
        load_page(_page(tmp_path, bad))
    with pytest.raises(FileNotFoundError, match="pages:"):
        load_page("no_such_page")


def test_jobs_skip_finished_runs_and_report_failures(tmp_path: Path, monkeypatch) -> None:
    """Seed-major jobs; a finished run is not started again; a failing job names its log."""
    _, cfg = load_page(_page(tmp_path))
    jobs = build_jobs(cfg)
    assert [(j.entry, j.seed) for j in jobs] == [("sup_semi", 0), ("sup", 0), ("s4mc", 0),
                                                 ("sup_semi", 1), ("sup", 1), ("s4mc", 1)]
    assert jobs[0].hydra_overrides() == ["experiment=sup_semi", "data.split=20", "seed=0",
                                         "trainer.max_epochs=3"]
    sweep = tmp_path / "sweep"
    _metrics(jobs[0].run_dir(sweep), 0.4)
    monkeypatch.setattr(jobs_mod, "prepare_data", lambda *a, **k: None)
    fake = tmp_path / "fake_train.py"  # stands in for the interpreter: writes metrics.json
    fake.write_text(
        "import json, sys, pathlib\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:] if '=' in a)\n"
        "if args['experiment'] == 's4mc' and args['seed'] == '1': sys.exit(3)\n"
        "d = pathlib.Path(args['hydra.sweep.dir']) / args['hydra.sweep.subdir']\n"
        "d.mkdir(parents=True, exist_ok=True)\n"
        "(d / 'metrics.json').write_text(json.dumps({'metrics': {'test/mIoU': 0.5}}))\n")
    monkeypatch.setattr(Job, "command", lambda self, sweep_dir, python, extra=(), step_dir=None: [
        sys.executable, str(fake), *self.hydra_overrides(), *extra,
        f"hydra.sweep.dir={self.run_dir(sweep_dir).parent}",
        f"hydra.sweep.subdir={self.run_dir(sweep_dir).name}"])
    with pytest.raises(JobFailed, match=r"s4mc split 20 seed 1 \(log .*s4mc_20_seed1.log\)"):
        run_jobs(jobs, sweep, lanes=2)
    assert all(j.is_done(sweep) for j in jobs[:5]) and not jobs[5].is_done(sweep)
    assert json.loads((jobs[0].run_dir(sweep) / "metrics.json").read_text())["metrics"][
        "test/mIoU"] == 0.4  # the finished run was not started again
    with pytest.raises(ValueError, match="lanes must be >= 1"):
        run_jobs(jobs, sweep, lanes=0)


def test_the_committed_page_configs_load() -> None:
    pages = sorted(Path(jobs_mod.REPO, "conf", "results").glob("*.yaml"))
    for path in pages:
        _, cfg = load_page(path)
        assert build_jobs(cfg), path
        assert OmegaConf.select(cfg, "out").startswith("docs/results/"), path


STEPS_PAGE = """
kind: methods
title: Toy pretraining
out: {out}
metric: test/mIoU
seeds: [0, 1]
steps:
  pretrain: {{train: byol, per_seed: false}}
  export:
    module: leseg.export
    args: ["{{step:pretrain}}/last.ckpt", "--out", "{{dir}}/backbone.pth"]
    done: backbone.pth
    per_seed: false
  probe: {{stage: probe, overrides: ["stage.ckpt={{step:pretrain}}/last.ckpt", "stage.seed={{seed}}"], done: result.json}}
supervised:
  few: {{experiment: sup, split: 20}}
  full: {{experiment: sup, split: full}}
methods:
  - {{experiment: sup, split: 20, name: byol, overrides: ["model.backbone.weights={{step:export}}/backbone.pth"]}}
"""

FAKE_PYTHON = """#!{python}
import json, pathlib, sys
argv = sys.argv[1:]
log = pathlib.Path({log!r})
with log.open("a") as f:
    f.write(" ".join(argv) + "\\n")
args = dict(a.split("=", 1) for a in argv if "=" in a)
if argv[0].endswith("train.py"):
    if args.get("experiment") == "byol" and {fail_pretrain}:
        sys.exit(5)
    d = pathlib.Path(args["hydra.sweep.dir"]) / args["hydra.sweep.subdir"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps({{"metrics": {{"test/mIoU": 0.5}}}}))
elif argv[:2] == ["-m", "leseg.stages"]:
    d = pathlib.Path(args["hydra.run.dir"])
    (d / "result.json").write_text(json.dumps({{"mIoU": 0.25 + 0.01 * int(args["stage.seed"])}}))
else:  # python -m leseg.export <ckpt> --out <file>
    assert pathlib.Path(argv[2]).parent.joinpath("metrics.json").is_file(), "pretrain not done"
    pathlib.Path(argv[4]).write_text("weights")
"""


def _fake_python(tmp_path: Path, fail_pretrain: bool = False) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, log=str(log),
                                       fail_pretrain=fail_pretrain))
    fake.chmod(0o755)
    return fake, log


def test_steps_run_once_before_the_jobs_that_refer_to_them(tmp_path: Path, monkeypatch) -> None:
    """A shared pretraining run, its export and a per-seed stage run before the jobs that name
    them; their directories are substituted; a second run starts nothing."""
    _, cfg = load_page(_page(tmp_path, STEPS_PAGE))
    steps = build_steps(cfg)
    assert [(st.name, st.seed) for st in steps] == [("pretrain", None), ("export", None),
                                                    ("probe", 0), ("probe", 1)]
    monkeypatch.setattr(jobs_mod, "prepare_data", lambda *a, **k: None)
    fake, log = _fake_python(tmp_path)
    sweep = tmp_path / "sweep"
    ran = run_jobs(build_jobs(cfg), sweep, lanes=2, python=str(fake), steps=steps)
    assert len(ran) == 4 + 6
    calls = log.read_text().splitlines()
    first_use = min(i for i, c in enumerate(calls) if "backbone.weights=" in c)
    export = next(i for i, c in enumerate(calls) if c.startswith("-m leseg.export"))
    pretrain = next(i for i, c in enumerate(calls) if "experiment=byol" in c)
    assert pretrain < export < first_use
    weights = sweep / "steps" / "export" / "shared" / "backbone.pth"
    assert weights.is_file() and f"model.backbone.weights={weights}" in calls[first_use]
    assert "stage.seed=1" in " ".join(calls) and "{seed}" not in " ".join(calls)
    assert run_jobs(build_jobs(cfg), sweep, lanes=2, python=str(fake), steps=steps) == []


def test_a_failed_step_stops_the_jobs_that_need_it(tmp_path: Path, monkeypatch) -> None:
    _, cfg = load_page(_page(tmp_path, STEPS_PAGE))
    monkeypatch.setattr(jobs_mod, "prepare_data", lambda *a, **k: None)
    fake, log = _fake_python(tmp_path, fail_pretrain=True)
    with pytest.raises(JobFailed, match=r"step pretrain \(log .*step_pretrain_shared.log\).*"
                                        r"step export \(not started: a step it needs failed\)"):
        run_jobs(build_jobs(cfg), tmp_path / "sweep", lanes=1, python=str(fake),
                 steps=build_steps(cfg))
    calls = log.read_text()
    assert "leseg.export" not in calls and "backbone.weights" not in calls
    assert "experiment=sup data.split=20 seed=0" in calls  # the jobs without the step still ran


def test_unknown_step_references_are_config_errors(tmp_path: Path) -> None:
    bad = STEPS_PAGE.replace("{{step:export}}/backbone.pth", "{{step:exprot}}/backbone.pth")
    with pytest.raises(PageConfigError, match=r"refers to \{step:exprot\}, which is not in steps"):
        load_page(_page(tmp_path, bad))
    bad = STEPS_PAGE.replace("    done: backbone.pth\n", "")
    with pytest.raises(PageConfigError, match=r"steps.export: a module step needs 'done'"):
        load_page(_page(tmp_path, bad))


TABLE_PAGE = """
kind: table
title: Toy pipeline
out: {out}
metric: mIoU
seeds: [0, 1]
baseline: cam
steps:
  cams: {{stage: cams, overrides: [], done: result.json}}
columns:
  - {{metric: mIoU, label: "mIoU (%)"}}
rows:
  - {{name: cam, label: CAM step, value: {{file: "{{step:cams}}/result.json", key: mIoU}}}}
  - {{name: rw, label: CAM + RW, value: {{file: "{{step:cams}}/rw.json", key: mIoU}}}}
figures_title: Affinity audit
figures:
  - {{name: auc, label: affinity AUC, value: {{file: "{{step:cams}}/audit.json", key: net.auc}}}}
"""


def test_table_page_reads_step_values_and_pairs_rows_with_their_baseline(tmp_path: Path) -> None:
    """CAM 25/27, RW 30/28 → +5/+1 = +3.00 ± 2.83 points, by hand."""
    page, cfg = load_page(_page(tmp_path, TABLE_PAGE))
    assert build_jobs(cfg) == []
    sweep = tmp_path / "sweep"
    for seed, (cam, rw) in enumerate(((0.25, 0.30), (0.27, 0.28))):
        d = sweep / "steps" / "cams" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"mIoU": cam}))
        (d / "rw.json").write_text(json.dumps({"mIoU": rw}))
        (d / "audit.json").write_text(json.dumps({"net": {"auc": 0.7 + 0.1 * seed}}))
    step_run = sweep / "steps" / "cam_net" / "seed0"  # a step's training run is not a row
    step_run.mkdir(parents=True)
    (step_run / "metrics.json").write_text(json.dumps({"metrics": {"mIoU": 0.9}}))
    text = render_page(page, cfg, sweep, "cmd").read_text()
    assert "All runs" not in text and "90.00" not in text
    assert "| CAM step | - | 26.00 ± 1.41 |" in text
    assert "| CAM + RW | CAM step | +3.00 ± 2.83 | above its baseline | — |" in text
    # a figure read by its dotted key from a nested JSON: 70 / 80 %
    assert "## Affinity audit" in text and "| affinity AUC | 75.00 ± 7.07 | 70.00, 80.00 |" in text
    with pytest.raises(PageConfigError, match="paired against 'nope', which is not a row"):
        load_page(_page(tmp_path, TABLE_PAGE.replace("baseline: cam", "baseline: nope")))


def test_a_row_can_reuse_another_pages_runs(tmp_path: Path) -> None:
    """`page: camvid_supervised` reads (and would run) the curve's run with that page's budget."""
    text = METHODS_PAGE.replace("full: {{experiment: sup, split: full}}",
                                "full: {{experiment: sup, split: full, page: camvid_supervised}}")
    _, cfg = load_page(_page(tmp_path, text))
    full = [j for j in build_jobs(cfg) if j.entry == "sup"][0]
    curve = OmegaConf.load(Path(jobs_mod.REPO, "conf", "results", "camvid_supervised.yaml"))
    assert full.run_dir(tmp_path) == (Path(jobs_mod.REPO) / "outputs" / "results" /
                                      "camvid_supervised" / "sup" / "full" / "seed0")
    assert list(full.overrides) == [str(o) for o in curve.overrides]  # not this page's budget


def test_a_difference_inside_the_seed_spread_is_called_noise(tmp_path: Path) -> None:
    """S4MC 41/41.5 against few 40/42: +1.0 / −0.5 → mean 0.25 < std 1.06: no verdict either way;
    one seed only names its sign as one seed."""
    page, cfg = load_page(_page(tmp_path))
    sweep = tmp_path / "sweep"
    for name, split, vals in (("sup_semi", "20", (0.40, 0.42)), ("sup", "full", (0.60, 0.58)),
                              ("s4mc", "20", (0.41, 0.415))):
        for seed, v in enumerate(vals):
            _metrics(sweep / name / split / f"seed{seed}", v)
    text = render_page(page, cfg, sweep, "cmd").read_text()
    assert "| S4MC | +0.25 ± 1.06 |" in text and "within seed noise (|mean| <= std over 2 seeds)" in text
    cfg.seeds = [0]
    text = render_page(page, cfg, sweep, "cmd").read_text()
    assert "beats the few-label baseline on 1 seed (no spread to judge)" in text
