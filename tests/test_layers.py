"""The house rules of docs/architecture.md, checked on the source: layers import downwards
only, the library never imports the CLI or prints, and modules and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "gvstore"

# The layers, lowest first (docs/architecture.md, "The layers"). A module may import modules
# of its own layer and of the layers below it, never above.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "digest", "names"),
    ("records", "io", "yaml_loader"),
    ("journal", "lock", "projcache", "segments", "compact_intent", "compact", "writer", "store",
     "store_check", "replay"),
    ("models", "params", "params_check", "tasks", "backends", "verifiers", "synth",
     "analysis.specs", "steps.finetune.config"),
    ("analysis", "steps", "importers"),
    ("report", "output", "progress", "view"),
    ("cli", "__main__"),
]
PRINTING = ("cli",)  # the package's only printing layer (stages/ print too)
WORKER = {"gvstore.tasks.math_equiv"}  # answers its parent over a pipe (stdout is the protocol)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "Long because"  # a longer function says why, in its docstring or a comment at its top


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _layer(module: str) -> int:
    if module == "gvstore":
        return 0  # the package itself imports nothing
    name = module.removeprefix("gvstore.")
    best = None
    for i, members in enumerate(LAYERS):
        for m in members:
            if (name == m or name.startswith(m + ".")) and (best is None or len(m) > best[1]):
                best = (i, len(m))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the doc")
    return best[0]


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gvstore":
                out += [(node.lineno, f"gvstore.{a.name}") for a in node.names]
            elif node.module.startswith("gvstore."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("gvstore.")]
    return sorted(out)


SOURCES = sorted(PKG.rglob("*.py"))
STAGES = sorted((REPO / "stages").glob("*.py"))


def _upward(module: str, source: str) -> list[str]:
    mine = _layer(module)
    return [f"line {line} imports {target}, a layer above {module}"
            for line, target in _imports(ast.parse(source)) if _layer(target) > mine]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_downwards(path: Path) -> None:
    assert _upward(_module(path), path.read_text()) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    src = ("from gvstore.records import Prompt\n"
           "def f():\n    from gvstore.analysis.gap import gap_table\n"
           "import gvstore.cli.app\n")
    assert _upward("gvstore.store", src) == [
        "line 3 imports gvstore.analysis.gap, a layer above gvstore.store",
        "line 4 imports gvstore.cli.app, a layer above gvstore.store"]
    assert _upward("gvstore.cli.gap", src) == []


def test_nothing_below_the_cli_imports_it() -> None:
    for path in SOURCES + STAGES:
        if _module(path).startswith(("gvstore.cli", "gvstore.__main__")):
            continue
        for line, target in _imports(ast.parse(path.read_text())):
            assert not target.startswith("gvstore.cli"), f"{path}:{line} imports {target}"


def _prints(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "print":
            lines.append(node.lineno)
        elif isinstance(f, ast.Attribute) and f.attr == "print":
            lines.append(node.lineno)  # console.print
        elif (isinstance(f, ast.Attribute) and f.attr == "write"
              and isinstance(f.value, ast.Attribute) and f.value.attr in ("stdout", "stderr")):
            lines.append(node.lineno)  # sys.stdout.write
    return lines


def test_only_the_cli_prints() -> None:
    found = []
    for path in SOURCES:
        module = _module(path).removeprefix("gvstore.")
        if module.startswith(PRINTING) or f"gvstore.{module}" in WORKER:
            continue
        found += [f"{path.relative_to(REPO)}:{n}" for n in _prints(ast.parse(path.read_text()))]
    assert found == []


def test_the_printing_check_sees_prints(tmp_path: Path) -> None:
    src = "import sys\nprint(1)\nconsole.print(2)\nsys.stdout.write('x')\nsys.stderr.write('y')\n"
    assert _prints(ast.parse(src)) == [2, 3, 4, 5]


@pytest.mark.parametrize("path", SOURCES + STAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path} has {text.count(chr(10))} lines"
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            n = node.end_lineno - node.lineno + 1
            top = "\n".join(lines[node.lineno - 1:node.lineno + 8])
            assert n <= MAX_FUNCTION_LINES or REASON in top, (
                f"{path.relative_to(REPO)}:{node.lineno} {node.name} is {n} lines; split it "
                f"or say why at its top ({REASON!r})")


def test_the_layer_table_knows_every_module() -> None:
    assert _layer("gvstore.analysis.specs") == 3 < _layer("gvstore.analysis.gap") == 4
    assert _layer("gvstore.steps.finetune.config") == 3 < _layer("gvstore.steps.finetune.step")
    with pytest.raises(AssertionError, match="in no layer"):
        _layer("gvstore.newthing")
