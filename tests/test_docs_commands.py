"""Every command the README and the docs show runs in a test, with its text taken from the docs.

A runnable command is a line of a ```` ```sh ```` block (synopses with ``[options]`` are ``text``
blocks). Each one is listed in :data:`HOW` with how it is exercised:

* ``run``: as written, in a scratch folder where ``tests/`` is the repository's;
* ``micro``: as written plus :data:`MICRO_FLAGS` (a few clips, the tiny model, one step): the long
  ones (``make demo``, the benchmark runs) keep their flags and change only their size;
* ``make``: a make target, run as its recipe lines from the ``Makefile`` (``$(PY)`` is this Python),
  micro where the recipe runs the benchmark;
* ``suite``: ``make test`` is this test suite itself.

A command added to the docs without a line in :data:`HOW` fails :func:`test_every_docs_command_is_known`.
The testing page of the docs lists the same table.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: Appended to a benchmark run: 2 test clips of a small synthetic set, the tiny model, one step.
MICRO_FLAGS = ["--num-clips", "2", "--model", "tiny", "--steps", "1"]

HOW = {
    "make demo": "make",
    "make test": "suite",
    "python -m avalign score tests/data/golden/clips --out runs/golden.jsonl": "run",
    "python -m benchmarks.run --dataset synthetic --out runs/demo": "micro",
    "python -m reports runs/demo --out runs/demo/report": "run",
    "python -m benchmarks.run --dataset synthetic --methods ground_truth,shuffled_audio,"
    "external:runs/demo/clips/static_frame --out runs/mine": "micro",
}


def docs_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for every line of every ``sh`` block, in the order the docs give them."""
    out = []
    for path in DOCS:
        for block in re.findall(r"^```sh\n(.*?)^```", path.read_text(), flags=re.S | re.M):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line and not line.startswith("#"):
                    out.append((str(path.relative_to(ROOT)), line))
    return out


def test_every_docs_command_is_known():
    found = {cmd for _, cmd in docs_commands()}
    assert found - set(HOW) == set(), "a docs command with no test: add it to HOW"
    assert set(HOW) - found == set(), "HOW lists a command the docs no longer show"


def test_the_testing_page_lists_how_each_command_runs():
    page = (ROOT / "docs" / "development" / "testing.md").read_text()
    for cmd, how in HOW.items():
        assert f"| `{cmd}` | {how} |" in page, cmd


def _make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target, with $(PY) as this Python and $(RUN) as the demo's."""
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, flags=re.M)
    assert m, target
    variables = {"PY": sys.executable, "RUN": "runs/demo"}
    lines = []
    for line in m.group(1).splitlines():
        line = re.sub(r"\$\((\w+)\)", lambda v: variables[v.group(1)], line.strip())
        lines.append(line)
    return lines


def _argv(cmd: str, how: str) -> list[str]:
    argv = shlex.split(cmd)
    if argv[:2] == ["python", "-m"] or argv[0] == sys.executable:
        argv[0] = sys.executable
    if how == "micro" or (how == "make" and "benchmarks.run" in argv):
        argv += MICRO_FLAGS
    return argv


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working folder whose ``tests/`` is the repository's."""
    here = tmp_path_factory.mktemp("docs")
    (here / "tests").symlink_to(ROOT / "tests")
    return here


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.timeout(120)
def test_the_score_quick_start_runs_as_written(scratch):
    (cmd,) = [c for c, how in HOW.items() if c.startswith("python -m avalign score")]
    done = _run(_argv(cmd, "run"), scratch)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (scratch / "runs" / "golden.jsonl").read_text().splitlines()]
    golden = json.loads((ROOT / "tests" / "data" / "golden" / "avalign_golden.json").read_text())
    assert sorted(Path(r["video"]).stem for r in records) == sorted(c["file"] for c in golden["clips"])


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_benchmark_commands_run_in_the_order_the_docs_give_them(scratch):
    """make demo (its recipe), then the README's runner, report and external commands, micro, on a
    small synthetic demo set where the runner looks for it."""
    from tempotokens.data.synthetic import make_synthetic

    make_synthetic(scratch / "runs" / "data" / "synthetic-demo", num_clips=10, seed=0, duration_s=2.0, size=32)
    for line in _make_recipe("demo"):
        done = _run(_argv(line, "make"), scratch)
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert (scratch / "runs" / "demo" / "report" / "index.md").is_file()
    seen = []
    for _, cmd in docs_commands():
        how = HOW[cmd]
        if how in ("make", "suite") or cmd in seen or cmd.startswith("python -m avalign score"):
            continue
        seen.append(cmd)
        done = _run(_argv(cmd, how), scratch)
        assert done.returncode == 0, (cmd, done.stderr[-2000:])
    rows = (scratch / "runs" / "mine" / "summary.csv").read_text()
    assert "static_frame" in rows and "ground_truth" in rows and "shuffled_audio" in rows
