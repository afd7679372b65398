"""The package's imports run one way: no cycle, and no layer reaching above itself.

Read from the source (the AST of every module), so a function-level import
counts as much as one at the top; imports under `if TYPE_CHECKING:` do not
(they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import aioupstage_ocr

PACKAGE = Path(aioupstage_ocr.__file__).parent
ROOT = "aioupstage_ocr"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (not under `if TYPE_CHECKING:`)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name `from <...> import` names, for a statement in `module`."""
    if node.level == 0:
        return node.module or ""
    is_package = _modules()[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Each module's direct imports of the package's own modules.

    `from pkg import name` imports `pkg.name` when that is a module, else `pkg`;
    the parent packages a module's import initialises on the way are not
    counted (Python imports a package before any of its modules).
    """
    modules = _modules()
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
                continue
            source = _resolve(module, node)
            if source not in modules:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
        targets.discard(module)
        graph[module] = frozenset(targets)
    return graph


def _reach(start: str) -> set[str]:
    graph = _graph()
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_walk_sees_the_imports() -> None:
    """The walk finds known edges, function-level ones included: it can fail."""
    graph = _graph()
    assert f"{ROOT}._client" in graph[ROOT]
    assert f"{ROOT}._engine" in _reach(f"{ROOT}._client")
    cli = f"{ROOT}._cli"
    assert any(m.startswith(f"{ROOT}.testing") for m in _reach(cli))  # `emulator`, lazily


def test_find_cycle_finds_one() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": frozenset({"b"}), "b": frozenset()}) is None


def test_type_checking_imports_do_not_count() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ._client import X\nelse:\n    from ._engine import Y\n"
        "def f():\n    from ._bulk import Z\n"
    )
    assert [n.module for n in _runtime_imports(tree)] == ["typing", "_engine", "_bulk"]


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _family(name: str) -> list[str]:
    """A module, or a package and every module in it."""
    return [m for m in _modules() if m == name or m.startswith(name + ".")]


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("_bulk", "_client"),
        ("_bulk", "_cli"),
        ("_engine", "_bulk"),
        ("_engine", "_client"),
        ("_reconcile", "_engine"),
        ("_reconcile", "_transport"),
        ("_poller", "_engine"),
        ("_transport", "_engine"),
        ("_client", "_cli"),
    ],
)
def test_layers_import_downwards(lower: str, upper: str) -> None:
    """`lower` never imports `upper`, directly or through another module."""
    modules = _family(f"{ROOT}.{lower}")
    assert modules, lower
    above = set(_family(f"{ROOT}.{upper}"))
    for module in modules:
        reached = (_reach(module) | set(_graph()[module])) & above
        assert not reached, f"{module} imports {sorted(reached)}"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_help_does_not_import_the_emulator() -> None:
    code = (
        "import contextlib, io, sys\n"
        "sys.argv = ['aioupstage-ocr', '--help']\n"
        "from aioupstage_ocr._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main()\n"
    )
    loaded = _modules_after(code)
    assert "aioupstage_ocr._cli" in loaded
    assert "aiohttp.web" not in loaded
    assert not any(m.startswith("aioupstage_ocr.testing") for m in loaded)


def test_ocr_without_emulator_does_not_import_it(tmp_path: Path) -> None:
    """A whole `ocr` run (against a dead port: the file fails) loads no emulator."""
    document = tmp_path / "a.png"
    document.write_bytes(b"not an image")
    code = (
        "import os, sys\n"
        "os.environ['UPSTAGE_API_KEY'] = 'k'\n"
        f"sys.argv = ['aioupstage-ocr', 'ocr', {str(document)!r}, '-o', {str(tmp_path / 'o')!r},"
        " '--base-url', 'http://127.0.0.1:9', '-q']\n"
        "from aioupstage_ocr._cli import main\n"
        "code = main()\n"
        "print(f'EXIT={code}')\n"
    )
    loaded = _modules_after(code)
    assert "EXIT=1" in loaded  # it ran: the bad file failed
    assert "aioupstage_ocr._cli" in loaded
    assert "aiohttp.web" not in loaded
    assert not any(m.startswith("aioupstage_ocr.testing") for m in loaded)


def test_emulator_flag_does_import_it(tmp_path: Path) -> None:
    """The check above can fail: `ocr --emulator` does load the emulator."""
    code = (
        "import sys\n"
        f"sys.argv = ['aioupstage-ocr', 'ocr', '--emulator', {str(tmp_path / 'x.pdf')!r},"
        f" '-o', {str(tmp_path / 'o')!r}, '-q']\n"
        "from aioupstage_ocr._cli import main\n"
        "main()\n"
    )
    assert "aiohttp.web" in _modules_after(code)
