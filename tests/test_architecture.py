"""The package's shape: every module imports, the import graph has no cycle, and only
the machines know machine names."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys

import pytest
from domains import ROOT, SAMPLES

PACKAGE = ROOT / "planner"


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """Every planner module ``name`` imports, at module level or in a function (lazily):
    all count, so a function-level import cannot hide a cycle. Imports made only for
    type checkers (``if TYPE_CHECKING:``) never run and do not count."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # a submodule, else a name from the module itself
                sub = f"{target}.{a.name}"
                out.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in MODULES and m != name}


def test_every_module_imports():
    for name in MODULES:
        if name != "planner.__main__":
            importlib.import_module(name)


def test_the_import_graph_has_no_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep] if dep in path else [name, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                walk(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other are reported."""
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.setitem(MODULES, "planner.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "planner.b", tmp_path / "b.py")
    assert imports_of("planner.a") == {"planner.b"}
    assert imports_of("planner.b") == {"planner.a"}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_import_graph_has_no_cycle()


def test_machine_names_appear_only_in_the_machines():
    name = re.compile(r"q35|'pc'|\"pc\"")
    outside = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        if "machines" not in p.relative_to(PACKAGE).parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if name.search(line)
    ]
    assert outside == []


def test_plan_types_import_no_machine():
    assert not any(m.startswith("planner.machines") for m in imports_of("planner.plan"))


def test_relayout_of_a_file_loads_neither_libvirt_nor_jinja2_nor_json():
    code = (
        "import io, sys\n"
        "from planner.cli import main\n"
        "sys.stdout = io.StringIO()\n"
        f"assert main(['relayout', {str(SAMPLES / 'cloudstack-2nic.xml')!r}]) == 0\n"
        "sys.stdout = sys.__stdout__\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert "planner.relayout" in loaded
    assert not loaded & {"libvirt", "jinja2", "json", "difflib", "xmltodict", "planner.virt"}
    # ... nor what only other commands or other output options need (start-up, bench row 2)
    others = {"planner.audit", "planner.firstfit", "planner.fleet", "planner.report"}
    # hot-plug's alone (its pure choice was planner.hotplug, loaded by `import planner`)
    others |= {"planner.choice", "planner.hotplug", "planner.attach", "planner.lock"}
    others |= {f"planner.cli.{c}" for c in ("show", "hotplug", "unplug", "audit")}
    others |= {"planner.machines.q35", "planner.acpi"}  # a pc domain, no --acpi-index
    output = {"planner.files", "planner.versions", "secrets", "platform", "traceback"}
    assert not loaded & (others | output)


def test_the_public_functions_are_not_shadowed_by_their_submodules():
    code = (
        "import importlib, planner\n"
        "for m in ('planner.choice', 'planner.relayout', 'planner.attach', 'planner.detach',\n"
        "          'planner.cli'):\n"
        "    importlib.import_module(m)\n"
        "import planner.relayout\n"
        "assert planner.hotplug.__module__ == 'planner', planner.hotplug\n"
        "assert planner.relayout.__module__ == 'planner.relayout', planner.relayout\n"
        "assert planner.unplug.__module__ == 'planner', planner.unplug\n"
        "assert callable(planner.hotplug) and callable(planner.relayout)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_every_subpackage_is_packaged():
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed
