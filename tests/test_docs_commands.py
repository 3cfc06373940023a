"""Every command the README and the docs show runs in a test, with its text taken from the docs.

A command is a line of a fenced ``sh``, ``text`` or unlabelled block that starts with a program the
project's users type (``python``, ``python3``, ``make``, ``accelerate``, ``ray``); a line ending in
``\\`` or followed by indented lines continues on them. Each one is listed in :data:`HOW` with how
it is exercised:

* ``run``: as written, in a scratch folder where ``tests/`` is the repository's;
* ``micro``: as written plus its tool's micro flags (:data:`MICRO_FLAGS`: a few clips, the tiny
  model, one step; ``--micro`` for the toy recipe);
* ``make``: a make target, run as its recipe lines from the ``Makefile`` (``$(PY)`` is this Python),
  micro where the recipe runs the benchmark or the toy recipe;
* ``suite``: ``make test`` is this test suite itself;
* ``synopsis``: a usage line (``[options]``, ``DIR``, ``...``): every flag it shows exists in the
  tool's parser, every choice list it shows is the parser's, every flag of the parser is shown,
  and the tool's ``--help`` runs;
* ``example``: a command on a user's data, run with :data:`EXAMPLE_VALUES` put in for its paths
  and variables;
* ``cluster``: ``ray start --head``, then the cluster page's commands against that cluster, then
  ``ray stop``;
* ``device``: the GPU machine's command, run here as a dry run (``--dry-run``, ``$OUT`` a scratch
  folder) after ``make gpu-wheels``.

A command added to the docs without a line in :data:`HOW` fails :func:`test_every_docs_command_is_known`.
The testing page of the docs lists the same table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PROGRAMS = ("python", "python3", "make", "accelerate", "ray")

#: Appended to a long command to make its micro variant, by the tool it runs.
MICRO_FLAGS = {
    "benchmarks.run": ["--num-clips", "2", "--model", "tiny", "--steps", "1"],  # 2 clips of a 10-clip set
    "tempotokens toy": ["--micro"],  # every stage for a few steps on 8 small clips
}

#: What an ``example`` command's user paths and job variables become.
EXAMPLE_VALUES = {
    "/data/vggsound/video": "tests/data/golden/clips",
    "$SLURM_ARRAY_TASK_ID": "3",
    "$SLURM_CPUS_PER_TASK": "1",
}

#: The parser of each tool, by the module ``python -m`` (or ``accelerate launch -m``) runs.
PARSERS = {
    "avalign": "avalign.cli:build_parser",
    "benchmarks.run": "benchmarks.run:build_parser",
    "benchmarks.metrics": "benchmarks.metrics.cli:build_parser",
    "benchmarks.study": "benchmarks.study:build_parser",
    "benchmarks.gpu_check": "benchmarks.gpu_check:build_parser",
    "tempotokens": "tempotokens.cli:build_parser",
    "tempotokens.train": "tempotokens.train:build_parser",
    "tempotokens.data": "tempotokens.data.__main__:build_parser",
    "reports": "reports.__main__:build_parser",
}

#: How each command that is not a synopsis runs (a synopsis needs no line: see the module docstring).
HOW = {
    "make demo": "make",
    "make test": "suite",
    "make toy": "make",
    "make gpu-check": "make",
    "make gpu-wheels": "make",
    "python -m avalign score tests/data/golden/clips --out runs/golden.jsonl": "run",
    "python -m avalign variants": "run",
    "python -m tempotokens.train --config tiny": "run",
    "python -m benchmarks.run --dataset synthetic --out runs/demo": "micro",
    "python -m reports runs/demo --out runs/demo/report": "run",
    "python -m benchmarks.run --dataset synthetic --methods ground_truth,shuffled_audio,"
    "external:runs/demo/clips/static_frame --out runs/mine": "micro",
    "ray start --head": "cluster",
    "python -m avalign score /data/vggsound/video --executor ray --address auto --out vggsound.jsonl": "cluster",
    "python -m avalign score /data/vggsound/video --shard $SLURM_ARRAY_TASK_ID/100 --workers "
    "$SLURM_CPUS_PER_TASK --out scores/shard-$SLURM_ARRAY_TASK_ID.jsonl": "example",
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
    ".whl/*.whl && export PYTHONPATH=/tmp/site:. && python3 -m benchmarks.gpu_check --out $OUT/gpu "
    "--budget-s 420": "device",
}

def _build(tool: str) -> argparse.ArgumentParser:
    """A fresh parser of ``tool`` (a key of :data:`PARSERS`)."""
    module, function = PARSERS[tool].split(":")
    return getattr(importlib.import_module(module), function)()


_PLACEHOLDER = re.compile(r"\[|\.\.\.|(?<![\w$/.-])[A-Z][A-Z_]+\b(?!=)")


def is_synopsis(cmd: str) -> bool:
    """A usage line: optional parts in brackets, ``...``, or a placeholder such as ``DIR``."""
    return bool(_PLACEHOLDER.search(cmd))


def docs_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for every command of every ``sh``/``text``/unlabelled block, in the
    order the docs give them (continuation lines joined, trailing ``# comments`` dropped)."""
    out = []
    for path in DOCS:
        name = str(path.relative_to(ROOT))
        for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), flags=re.S | re.M):
            if lang not in ("sh", "text", ""):
                continue
            cmd = None
            for raw in block.splitlines():
                line = raw.split(" #")[0].rstrip()
                if cmd is not None and (cmd.endswith("\\") or (line[:1].isspace() and line.strip())):
                    cmd = cmd.rstrip("\\").rstrip() + " " + line.strip()
                    continue
                if cmd:
                    out.append((name, cmd))
                cmd = line.strip() if line.strip().split(" ")[0] in PROGRAMS else None
            if cmd:
                out.append((name, cmd))
    return out


def test_every_docs_command_is_known():
    found = [cmd for _, cmd in docs_commands()]
    concrete = {cmd for cmd in found if not is_synopsis(cmd)}
    assert concrete - set(HOW) == set(), "a docs command with no test: add it to HOW"
    assert set(HOW) - concrete == set(), "HOW lists a command the docs no longer show (or shows as a synopsis)"
    assert len(found) > len(HOW)  # the synopses were found too


def test_the_testing_page_lists_how_each_command_runs():
    page = (ROOT / "docs" / "development" / "testing.md").read_text()
    for cmd, how in HOW.items():
        assert f"| `{cmd}` | {how} |" in page, cmd


def _parser(cmd: str) -> tuple[argparse.ArgumentParser, str]:
    """The (sub-)parser a synopsis is of, and the synopsis after the tool's (and sub-command's) name.
    A tool with sub-commands must be followed by one of them (or by ``...``)."""
    words = cmd.split()
    i = words.index("-m") + 1
    parser = _build(words[i])
    rest = words[i + 1:]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if rest and rest[0] in action.choices:
                return action.choices[rest[0]], " ".join(rest[1:])
            if not (rest and rest[0] == "..."):
                raise LookupError(f"{words[i]} has no sub-command {rest[0] if rest else '(none given)'!r}")
    return parser, " ".join(rest)


def _same_choice(shown: str, real) -> bool:
    try:
        return float(shown) == float(real)
    except (TypeError, ValueError):
        return shown == str(real)


def synopsis_problems(cmd: str) -> list[str]:
    """What a synopsis shows that its parser does not have, and what the parser has that a full
    synopsis (one not starting with ``...``) leaves out."""
    try:
        parser, rest = _parser(cmd)
    except LookupError as exc:
        return [str(exc)]
    options = parser._option_string_actions
    shown = re.findall(r"(?<![\w-])(--[a-z][\w-]*)(?:[ =](\{[^}]*\}|[a-z_0-9]+(?:\|[a-z_0-9]+)+))?", rest)
    problems = []
    for flag, choices in shown:
        if flag not in options:
            problems.append(f"{flag}: no such option")
        elif choices:
            values, real = choices.strip("{}").replace("|", ",").split(","), options[flag].choices
            if real is None or len(values) != len(real) or not all(
                    any(_same_choice(v, r) for r in real) for v in values):
                problems.append(f"{flag}: the docs show {values}, the parser takes {real}")
    if not rest.startswith("..."):
        names = {flag for flag, _ in shown}
        problems += [f"{a.option_strings[-1]}: not shown" for a in parser._actions
                     if a.option_strings and a.help != argparse.SUPPRESS and "-h" not in a.option_strings
                     and not names & set(a.option_strings)]
    return problems


@pytest.mark.parametrize("page,cmd", [(p, c) for p, c in docs_commands() if is_synopsis(c)],
                         ids=lambda v: v[:60])
def test_every_synopsis_is_its_parser(page, cmd, capsys):
    """Every flag a usage line shows exists, with the choices shown; a full usage line shows every
    flag; and the tool's --help runs."""
    assert synopsis_problems(cmd) == [], f"{page}: {cmd}"
    parser, _ = _parser(cmd)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


def test_a_synopsis_check_catches_a_wrong_flag_choice_sub_command_or_a_missing_flag():
    """Each kind of drift the checker exists for, with its expected complaint written out by hand."""
    reports = "python -m reports RUN_DIR... [--out DIR] [--timelines N] [--filmstrips N]"
    assert synopsis_problems(reports) == []
    assert synopsis_problems("python -m reports RUN_DIR... [--out DIR] [--timelines N]") == ["--filmstrips: not shown"]
    assert synopsis_problems(reports + " [--colour X]") == ["--colour: no such option"]
    assert synopsis_problems("python -m benchmarks.run ... --executor {local,slurm}") == [
        "--executor: the docs show ['local', 'slurm'], the parser takes ('local', 'ray')"]
    assert synopsis_problems("python -m benchmarks.run ... --executor {local}") == [  # a subset is drift too
        "--executor: the docs show ['local'], the parser takes ('local', 'ray')"]
    assert synopsis_problems("python -m benchmarks.run ... --executor {local,ray}") == []
    assert synopsis_problems("python -m avalign scroe PATH...") == ["avalign has no sub-command 'scroe'"]
    assert synopsis_problems("python -m tempotokens make-tiny DIR [--seed S]") == []


def _all_parsers():
    for tool in PARSERS:
        parser = _build(tool)
        yield tool, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from ((f"{tool} {name}", sub) for name, sub in action.choices.items())


def test_every_tool_shows_each_default_once():
    """Every option with a default has help text that names it once (argparse prints no help line,
    so no default, for an option without help)."""
    problems = []
    for tool, parser in _all_parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
                continue
            if action.default is None or action.default is False:
                continue
            shown = formatter._get_help_string(action) % dict(vars(action), prog=parser.prog) if action.help else ""
            if shown.count("default") != 1:
                problems.append(f"{tool} {action.option_strings[-1]}: {shown!r}")
    assert problems == []


def inline_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for every inline code span of the README and the docs that names one of
    the project's tools (``python -m TOOL ...``) or a make target."""
    out = []
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # the blocks are checked above
        for span in re.findall(r"`((?:python -m|make) [^`]+)`", text):
            out.append((str(path.relative_to(ROOT)), span))
    return out


def test_every_inline_command_names_a_real_tool_target_and_flags(capsys):
    """A command written in the text (``python -m avalign score DIR --workers 2``): its tool and
    make target exist, and it parses (placeholders such as ``DIR`` filled in) with its tool's parser."""
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    spans = inline_commands()
    assert len(spans) > 40
    for page, span in spans:
        for name, value in EXAMPLE_VALUES.items():
            span = span.replace(name, value)
        words = span.split()
        if words[0] == "make":
            assert words[1] in targets, f"{page}: `{span}`: no such make target"
            continue
        assert words[2] in PARSERS, f"{page}: `{span}`: not one of the project's tools"
        if len(words) == 3:
            continue  # the tool's name alone
        parser = _build(words[2])
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if len(words) == 4 and subs and words[3] in subs[0].choices:
            continue  # a sub-command named in the text (``python -m tempotokens toy``)
        args = [re.sub(r"^[A-Z][A-Z_]*(\.\.\.|\.\w+)?$", "x", w) for w in words[3:]]
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            raise AssertionError(f"{page}: `{span}` does not parse: {capsys.readouterr().err.strip()}") from exc


def _make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target, with $(PY) as this Python and $(RUN), $(TOY) as set there."""
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, flags=re.M)
    assert m, target
    variables = {"PY": sys.executable, **dict(re.findall(r"^(RUN|TOY)\s*[:?]?=\s*(\S+)", text, flags=re.M))}
    lines: list[str] = []
    for raw in m.group(1).splitlines():
        line = re.sub(r"(?<!\$)\$\((\w+)\)", lambda v: variables[v.group(1)], raw.split("  #")[0].strip())
        line = line.replace("$$", "$")
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line
        else:
            lines.append(line)
    return lines


def _argv(cmd: str, how: str) -> list[str]:
    argv = shlex.split(cmd)
    if argv[:2] == ["python", "-m"]:
        argv[0] = sys.executable
    if how in ("micro", "make"):
        tool = " ".join(argv[2:4]) if argv[2:3] == ["tempotokens"] else (argv[2] if len(argv) > 2 else "")
        argv += MICRO_FLAGS.get(tool, [])
    return argv


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working folder whose ``tests/`` is the repository's."""
    here = tmp_path_factory.mktemp("docs")
    (here / "tests").symlink_to(ROOT / "tests")
    return here


def _run(argv: list[str] | str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           **env}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          shell=isinstance(argv, str))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


GOLDEN = json.loads((ROOT / "tests" / "data" / "golden" / "avalign_golden.json").read_text())


@pytest.mark.slow  # 14 s: the golden clips scored by a fresh process
@pytest.mark.timeout(120)
def test_the_score_quick_start_runs_as_written(scratch):
    (cmd,) = [c for c in HOW if c.startswith("python -m avalign score tests/")]
    done = _run(_argv(cmd, "run"), scratch)
    assert done.returncode == 0, done.stderr
    records = _records(scratch / "runs" / "golden.jsonl")
    assert sorted(Path(r["video"]).stem for r in records) == sorted(c["file"] for c in GOLDEN["clips"])


def test_the_variants_command_lists_every_variant(scratch):
    from avalign.variants import VARIANTS

    done = _run(_argv("python -m avalign variants", "run"), scratch)
    assert done.returncode == 0, done.stderr
    assert [re.match(r"[\w.-]+", line).group() for line in done.stdout.splitlines()] == list(VARIANTS)


@pytest.mark.slow  # 4 s: a fresh process
@pytest.mark.timeout(120)
def test_the_job_array_example_scores_its_shard(scratch):
    """Shard 3 of 100 of the 12 golden clips is the 4th clip in sorted order, and only it."""
    (cmd,) = [c for c, how in HOW.items() if how == "example"]
    for name, value in EXAMPLE_VALUES.items():
        cmd = cmd.replace(name, value)
    done = _run(_argv(cmd, "example"), scratch)
    assert done.returncode == 0, done.stderr
    (record,) = _records(scratch / "scores" / "shard-3.jsonl")
    assert Path(record["video"]).stem == sorted(c["file"] for c in GOLDEN["clips"])[3]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cluster_commands_run_against_a_started_cluster(scratch):
    """``ray start --head``, then the page's scoring command with ``--address auto``: the records are
    the golden numbers; ``ray stop`` after, however the test ends."""
    import tempfile

    pytest.importorskip("ray")
    cmds = [c for c, how in HOW.items() if how == "cluster"]
    # a cluster of this test's own (short: Ray's socket paths must fit in 107 bytes)
    env = {"RAY_TMPDIR": tempfile.mkdtemp(prefix="ray-", dir="/tmp")}
    try:
        for cmd in cmds:
            cmd = cmd.replace("/data/vggsound/video", EXAMPLE_VALUES["/data/vggsound/video"])
            done = _run(_argv(cmd, "cluster"), scratch, **env)
            assert done.returncode == 0, (cmd, done.stderr[-2000:])
    finally:
        _run(["ray", "stop", "--force"], scratch, **env)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    scores = {Path(r["video"]).stem: r["score"] for r in _records(scratch / "vggsound.jsonl")}
    assert scores == {c["file"]: c["score"] for c in GOLDEN["clips"]}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_tiny_training_command_runs_as_written(scratch):
    done = _run(_argv("python -m tempotokens.train --config tiny", "run"), scratch)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (scratch / "runs" / "train-tiny" / "adaptor").is_dir()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_benchmark_commands_run_in_the_order_the_docs_give_them(scratch):
    """make demo (its recipe), then the README's runner, report and external commands, micro, on a
    small synthetic demo set where the runner looks for it."""
    from tempotokens.data.synthetic import make_synthetic

    make_synthetic(scratch / "runs" / "data" / "synthetic-demo-jolt-v3", num_clips=10, seed=0, duration_s=2.0, size=32)
    for line in _make_recipe("demo"):
        done = _run(_argv(line, "make"), scratch)
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert (scratch / "runs" / "demo" / "report" / "index.md").is_file()
    seen = []
    for _, cmd in docs_commands():
        how = HOW.get(cmd)
        if how not in ("run", "micro") or cmd in seen or not cmd.split()[2].startswith(("benchmarks", "reports")):
            continue
        seen.append(cmd)
        done = _run(_argv(cmd, how), scratch)
        assert done.returncode == 0, (cmd, done.stderr[-2000:])
    rows = (scratch / "runs" / "mine" / "summary.csv").read_text()
    assert "static_frame" in rows and "ground_truth" in rows and "shuffled_audio" in rows


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_toy_runs_its_recipe_as_a_micro_build(scratch):
    for line in _make_recipe("toy"):
        assert line.endswith(" toy runs/toy"), line  # the docs' "= python -m tempotokens toy runs/toy"
        done = _run(_argv(line, "make"), scratch)
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert (scratch / "runs" / "toy" / "model" / "model_index.json").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_gpu_commands_run_as_dry_runs(tmp_path):
    """make gpu-check (its recipe: a dry run), make gpu-wheels (from the package registry), then the
    GPU machine's command in a copy of the tree, with --dry-run and $OUT a scratch folder."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("avalign", "tempotokens", "benchmarks", "baselines", "reports", "tests"):
        (tree / name).symlink_to(ROOT / name)
    for line in _make_recipe("gpu-check"):
        done = _run(_argv(line, "make"), tree)
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert json.loads((tree / "runs" / "gpu-check" / "gpu.json").read_text())
    wheels = _make_recipe("gpu-wheels")
    done = _run(" && ".join(wheels), tree)
    assert done.returncode == 0, f"make gpu-wheels (it needs the package registry): {done.stderr[-1000:]}"
    assert sorted(p.name.split("-")[0] for p in (tree / ".whl").glob("*.whl")) == ["diffusers"]
    (cmd,) = [c for c, how in HOW.items() if how == "device"]
    cmd = cmd.replace("python3", shlex.quote(sys.executable)).replace("/tmp/site", str(tmp_path / "site"))
    done = _run(cmd + " --dry-run", tree, OUT=str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "gpu" / "gpu.json").read_text())
    assert result and (tmp_path / "site" / "diffusers").is_dir()
