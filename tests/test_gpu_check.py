"""``benchmarks.gpu_check``: the dry run (every record has a status), the budget, the import path."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.gpu_check import GRACE_S, PLAN, main

ROOT = Path(__file__).resolve().parents[1]
STATUSES = {"ok", "skipped", "timeout", "error"}
NAMES = [n for _, names in PLAN for n in names]


def _our_imports() -> set[str]:
    """Top-level modules imported anywhere in our packages (at any depth: also inside functions)."""
    import ast

    names = set()
    for package in ("avalign", "tempotokens", "benchmarks", "baselines", "reports"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _absent_on_the_gpu_machine() -> list[str]:
    """Modules our code imports somewhere whose distributions are neither on the GPU machine nor
    carried: the dry run runs with every one of them made unimportable."""
    import importlib.metadata as md

    from benchmarks.gpu_check import GPU_WHEELS

    there = {l.strip().lower() for l in (ROOT / "benchmarks" / "gpu_machine_packages.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")} | {w.split("==")[0].lower() for w in GPU_WHEELS}
    dists = md.packages_distributions()
    ours = {"avalign", "tempotokens", "benchmarks", "baselines", "reports"}  # travel with the working tree
    absent = {m for m in _our_imports() - ours if m in dists
              and not any(d.lower().replace("_", "-") in there for d in dists[m])}
    return sorted(absent | {"av", "librosa", "soundfile", "omegaconf"})


@pytest.mark.slow  # about a minute on 2 cores; CI runs it (the micro variant of make gpu-check)
def test_the_dry_run_writes_one_record_per_measurement_without_what_the_gpu_machine_lacks(tmp_path, capsys,
                                                                                           monkeypatch):
    absent = _absent_on_the_gpu_machine()
    assert {"soxr", "av", "librosa"} <= set(absent)  # the list is computed, and catches the known ones
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nfor n in {absent!r}:\n    sys.modules[n] = None\n")
    monkeypatch.setenv("PYTHONPATH", f"{site}{os.pathsep}{ROOT}")  # every worker process: those modules absent
    out = tmp_path / "out"
    assert main(["--out", str(out), "--budget-s", "300", "--dry-run"]) == 0
    record = json.loads((out / "gpu.json").read_text())
    names = [r["name"] for r in record["records"]]
    assert names == NAMES and record["dry_run"] is True
    by_name = {r["name"]: r for r in record["records"]}
    assert all(r["status"] in STATUSES and r["device"] == "cpu" and r["torch"] for r in record["records"])
    failed = {n: r["reason"] for n, r in by_name.items() if r["status"] in ("error", "timeout")}
    assert not failed
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "gpu.md", "log.txt", "records.jsonl"]
    # the training step reads the shipped config as it stands (checked here with yaml, independently)
    shipped = yaml.safe_load((ROOT / "tempotokens" / "configs" / "vggsound.yaml").read_text())
    train = by_name["train-step-fp16"]["settings"]
    assert train["batch_size"] == shipped["batch_size"] and train["fps"] == shipped["data"]["fps"]
    assert by_name["train-step-fp16-checkpointing"]["settings"]["gradient_checkpointing"] is True
    assert by_name["generate-bf16"]["settings"]["dtype"] == "bfloat16"  # the half path runs in the dry run
    ratio = by_name["generate-stock-ratio"]["value"]
    assert ratio["ours_over_stock"] == pytest.approx(ratio["ours_s_per_clip"] / ratio["stock_s_per_clip"])
    table = (out / "gpu.md").read_text()
    assert "dry run" in table and all(f"| {n} |" in table for n in NAMES)
    # the sync passes in the scorers' default batches for the device (here the CPU's)
    assert by_name["features-desync"]["settings"]["passes"] == {"video": {"items": 2, "batch": 1},
                                                                "audio": {"items": 2, "batch": 8}}
    assert by_name["features-ib"]["settings"]["passes"]["video"] == {"items": 2, "batch": 3}
    assert set(by_name["features-ib"]["value"]) == {"video_s_per_clip", "audio_s_per_clip"}
    assert "15 ok, 1 skipped" in capsys.readouterr().out


@pytest.mark.slow  # 14 s
def test_no_measurement_starts_once_the_budget_is_spent(tmp_path):
    """One injected slow measurement (the first) outlasts the budget: its group is stopped at the
    budget, and nothing after it starts."""
    budget = 14.0  # the first group's set-up (imports, the tiny model) takes 3-10 s
    t0 = time.monotonic()
    assert main(["--out", str(tmp_path), "--budget-s", str(budget), "--dry-run",
                 "--inject-slow", "generate-fp16=120"]) == 0
    wall = time.monotonic() - t0
    assert wall < budget + GRACE_S
    records = json.loads((tmp_path / "gpu.json").read_text())["records"]
    assert [r["name"] for r in records] == NAMES
    by_name = {r["name"]: r for r in records}
    assert by_name["generate-fp16"]["status"] == "timeout" and by_name["generate-fp16"]["seconds"] > 1
    assert all(r["status"] == "skipped" and ("not started" in r["reason"] or "budget spent" in r["reason"])
               for r in records if r["name"] != "generate-fp16")


def test_the_worker_starts_nothing_past_its_deadline(tmp_path):
    """The worker's own check (not the parent's kill): with its deadline passed, every measurement of
    the group is recorded as skipped by the worker."""
    from benchmarks.gpu_check import run_group

    run_group("correctness", tmp_path, deadline=time.monotonic() - 1, dry_run=True)
    lines = [json.loads(l) for l in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == list(dict(PLAN)["correctness"])
    assert all(r["status"] == "skipped" and r["reason"] == "budget spent before it started" for r in lines)


@pytest.mark.parametrize("budget", ["0", "-5", "nan", "inf"])
def test_a_bad_budget_is_one_line_and_exit_2(tmp_path, capsys, budget):
    assert main(["--out", str(tmp_path), "--budget-s", budget]) == 2
    assert "--budget-s must be a positive number of seconds" in capsys.readouterr().err


WALK = r"""
import importlib, importlib.abc, importlib.metadata as md, json, sys
importer = {}  # top-level module -> the top-level package whose code imported it first


class Who(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if "." not in name and name not in importer:
            f = sys._getframe(1)
            while f is not None and (f.f_globals.get("__name__", "").startswith(("importlib", "_frozen")) or
                                     f.f_globals.get("__name__") in (None, __name__)):
                f = f.f_back
            importer[name] = (f.f_globals.get("__name__", "?") if f is not None else "?").split(".")[0]
        return None


sys.meta_path.insert(0, Who())
for name in ("av", "librosa", "soundfile", "omegaconf"):
    sys.modules[name] = None  # absent, as on the GPU machine: an import of it raises
for m in ("benchmarks.gpu_check", "benchmarks.gpu_measure", "tempotokens.pipeline", "tempotokens.tiny",
          "tempotokens.training.checkpointing", "tempotokens.frame_attention", "tests.fixtures.weights",
          "benchmarks.metrics.fvd", "benchmarks.metrics.inception", "benchmarks.metrics.clipsim",
          "benchmarks.metrics.desync", "benchmarks.metrics.ib", "diffusers",
          "yaml"):
    importlib.import_module(m)
from benchmarks.gpu_measure import full_size_pipeline, setup  # what the groups call
from diffusers import DPMSolverMultistepScheduler, TextToVideoSDPipeline
from diffusers.models.attention_processor import AttnProcessor
dists = md.packages_distributions()
top = {m.split(".")[0] for m, mod in list(sys.modules.items()) if mod is not None}
print(json.dumps({t: [dists[t], importer.get(t, "?")] for t in sorted(top) if t in dists}))
"""


@pytest.mark.slow  # 9 s: fresh interpreters
def test_the_import_path_needs_only_what_the_gpu_machine_has_or_the_carried_wheels():
    done = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    # top-level module -> (its distributions, the top-level package that imported it)
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    there = {l.strip().lower() for l in (ROOT / "benchmarks" / "gpu_machine_packages.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")}
    from benchmarks.gpu_check import GPU_WHEELS

    carried = {w.split("==")[0].lower() for w in GPU_WHEELS}
    ours = {"tempotokens", "avalign"}  # this project (travels with the working tree)
    allowed = there | carried | ours

    def norm(d):
        return d.lower().replace("_", "-")

    def provided(module):
        return any(norm(x) in allowed for x in modules[module][0]) if module in modules else False

    # a module is fine when the GPU image or the wheels have it, or when it was imported by a package
    # that is there only because the GPU image has it (transitively; never ours or a carried wheel):
    # the image's packages come with their own dependencies
    fine = {m for m in modules if any(norm(x) in there for x in modules[m][0])} - {*ours, "diffusers"}
    grew = True
    while grew:
        more = {m for m, (_, by) in modules.items() if by in fine and m not in fine}
        fine |= more
        grew = bool(more)
    missing = {m: d for m, (d, by) in modules.items() if not provided(m) and m not in fine}
    assert missing == {}
    assert {"av", "librosa", "soundfile", "omegaconf"}.isdisjoint(modules)


@pytest.mark.slow  # 12 s: a fresh interpreter runs the GPU tests
def test_the_gpu_tests_run_without_the_packages_the_gpu_machine_lacks():
    from benchmarks.gpu_measure import gpu_test_files

    files = gpu_test_files(ROOT)
    assert files and all("test_" in f.name for f in files)
    code = ("import sys\nfor n in ('av', 'librosa', 'soundfile', 'omegaconf'): sys.modules[n] = None\n"
            f"import pytest\nsys.exit(pytest.main(['-q', '-m', 'gpu', '-p', 'no:cacheprovider', *{[str(f) for f in files]!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert done.returncode == 0 and "skipped" in done.stdout, done.stdout[-2000:]  # skipped here: no CUDA
