"""The import layers (docs: Development > Architecture), checked by walking every import with ``ast``.

Low to high: the shared media layer ``avalign.io``; the metric ``avalign``; the generator
``tempotokens``; the compared methods ``baselines``; the runner and metrics ``benchmarks``; the
tables and plots ``reports``.  A package imports only from its own layer and those below it; the
media layer imports nothing else of the project; the metric imports only the media layer's public
names; no two modules import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["avalign.io", "avalign", "tempotokens", "baselines", "benchmarks", "reports"]
PACKAGES = ["avalign", "tempotokens", "baselines", "benchmarks", "reports"]
#: Development tools in the repository that build test stand-ins from the test fixtures.
MAY_IMPORT_TESTS = {"benchmarks.gpu_measure"}


def _rank(module: str) -> int | None:
    if module == "avalign.io" or module.startswith("avalign.io."):
        return 0
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for every import in the file (module level and inside
    functions), relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            out.append((base, names, node.lineno))
            for n in names:  # ``from . import core`` imports the module avalign.core
                if f"{base}.{n}" in MODULES:
                    out.append((f"{base}.{n}", [], node.lineno))
    return out


MODULES = modules()


def _project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES or name.split(".")[0] == "tests"


def test_every_import_goes_down_the_layers():
    wrong = []
    for module, path in MODULES.items():
        here = _rank(module)
        for target, names, line in imports(module, path):
            if not _project(target):
                continue
            if target.split(".")[0] == "tests":
                if module not in MAY_IMPORT_TESTS and not module.startswith("benchmarks.suites"):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} (tests are not a layer)")
                continue
            there = _rank(target)
            if there > here:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}, a higher layer")
    assert not wrong, "\n".join(wrong)


def test_the_media_layer_is_used_through_its_public_names():
    wrong = []
    for module, path in MODULES.items():
        if module.startswith("avalign.io"):
            continue
        for target, names, line in imports(module, path):
            if target.startswith("avalign.io") and any(n.startswith("_") for n in names):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports a private name of {target}: {names}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's __init__ re-exports its modules: it is not a cycle for a module to import its own package
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("bad, why", [
    ("from avalign.io.video import _private", "private"),
    ("from benchmarks.run import main", "higher"),
])
def test_the_walk_sees_a_violation(tmp_path, monkeypatch, bad, why):
    """The checks above can fail: a planted import in a metric module is found."""
    fake = tmp_path / "avalign" / "planted.py"
    fake.parent.mkdir()
    fake.write_text(bad + "\n")
    monkeypatch.setitem(MODULES, "avalign.planted", fake)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    check = test_the_media_layer_is_used_through_its_public_names if why == "private" else \
        test_every_import_goes_down_the_layers
    with pytest.raises(AssertionError, match="planted"):
        check()
