"""The house keeps its shape (issue 28): the import contracts in pyproject.toml hold (layers imported only from
above, no circle between the modules of a folder), and no module of Gingham reaches into another's private names.

import-linter checks the contracts. It has no contract for private names, so :func:`private_reaches` walks the
syntax of every module for them: ``from M import _name`` and ``M._name`` where M is another Gingham module, and
``obj._name`` where ``_name`` is not defined in the module that reads it but in another of Gingham's (an attribute of
another module's object; other packages' private names, numba's or torch's, are not this check's concern). A
private module (``gingham._version``) may be imported within the package that holds it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The underscore names of namedtuples' public API.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
#: Attributes of other packages' objects whose names happen to be defined in Gingham too: (module, name).
NOT_OURS = {("gingham.kernels.warmup", "_cache")}  # numba's dispatcher cache (is_cached reads numba's internals)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: Path, top: Path, package: str) -> str:
    parts = [package, *path.relative_to(top).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _private_module_ok(importer: str, target: str) -> bool:
    """A dotted module path with private parts may be used by modules inside the package holding each part."""
    parts = target.split(".")
    return all(_within(importer, ".".join(parts[:i])) for i, part in enumerate(parts) if _private(part))


def _defined_here(tree: ast.AST) -> set[str]:
    """Underscore names this module defines: functions, classes, assignments, and attributes it sets on objects."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            names.add(str(node.args[1].value))
    return {n for n in names if _private(n)}


def private_reaches(source: str, module: str, is_package: bool = False, others: set[str] = frozenset(),
                    root: str = "gingham") -> list[str]:
    """Where ``source`` (the text of module ``module``) uses another Gingham module's private names; ``others``:
    the underscore names Gingham's other modules define."""
    tree = ast.parse(source)
    found = []
    own = _defined_here(tree)
    modules: dict[str, str] = {}  # local name -> Gingham module it is bound to
    external: set[str] = set()  # local names bound to other packages' modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                if alias.name.split(".")[0] == root:
                    target = alias.name if alias.asname else root
                    modules[local] = target
                    if not _private_module_ok(module, alias.name):
                        found.append(f"{module}:{node.lineno}: import {alias.name}")
                else:
                    external.add(local)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                external.update(a.asname or a.name for a in node.names)
                continue
            if not _private_module_ok(module, target):
                found.append(f"{module}:{node.lineno}: from {target} import ...")
            for alias in node.names:
                if _private(alias.name) and target != module and not _private_module_ok(module, f"{target}.{alias.name}"):
                    found.append(f"{module}:{node.lineno}: from {target} import {alias.name}")
                modules[alias.asname or alias.name] = f"{target}.{alias.name}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)) or node.attr in NAMEDTUPLE_API:
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            continue
        if isinstance(base, ast.Name) and base.id in external:
            continue  # another package's private API is not this contract's concern
        if isinstance(base, ast.Name) and base.id in modules:
            target = modules[base.id]
            if target != module and not _private_module_ok(module, f"{target}.{node.attr}"):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)} (a private name of {target})")
            continue
        if node.attr not in own and node.attr in others and (module, node.attr) not in NOT_OURS:
            found.append(f"{module}:{node.lineno}: {ast.unparse(node)} (defined in another module)")
    return found


def gingham_modules() -> dict[str, tuple[str, bool]]:
    """Every module of Gingham: name -> (source, is a package)."""
    out = {}
    for top, package in ((ROOT / "engine", "gingham"), (ROOT / "kernels", "gingham.kernels")):
        for path in sorted(top.rglob("*.py")):
            out[module_name(path, top, package)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return out


def test_no_private_reach_across_modules():
    modules = gingham_modules()
    defined = {name: _defined_here(ast.parse(source)) for name, (source, _) in modules.items()}
    found = []
    for name, (source, is_package) in modules.items():
        others = set().union(*(d for other, d in defined.items() if other != name))
        found += private_reaches(source, name, is_package, others)
    assert not found, "private names used across modules (give them a public name):\n" + "\n".join(found)


@pytest.mark.parametrize("source, caught", [
    ("from gingham.build.streaming import _finish\n", True),
    ("from gingham.build import streaming\nstreaming._finish()\n", True),
    ("import gingham.build.streaming as s\ns._finish()\n", True),
    ("def f(index):\n    return index._snap\n", True),
    ("from gingham.build.sources import _encoder_worker_init\n", True),
    ("from gingham.evaluation.drivers._helpers import peak_rss_mb\n", True),  # outside gingham.evaluation.drivers
    ("class A:\n    def __init__(self):\n        self._x = 1\n\ndef f(a):\n    return a._x\n", False),
    ("from gingham._version import __version__\n", False),
    ("import torch\ntorch._int_mm\n", False),
    ("def f(ix):\n    return ix._replace(codes=None)\n", False),
    ("from gingham.build import streaming\nstreaming.build\n", False),
])
def test_the_private_name_check_catches_what_it_should(source, caught):
    others = {"_finish", "_snap", "_x", "_int_mm_not_ours"}  # as if other modules of Gingham defined these
    assert bool(private_reaches(textwrap.dedent(source), "gingham.app.cli", others=others)) is caught


def test_kernels_import_nothing_of_the_engine():
    """The bottom layer, which import-linter does not see (kernels/ is gingham.kernels but not inside engine/, the
    folder it reads as gingham): a kernel module imports numpy, numba and other kernels, nothing of the engine."""
    found = []
    for name, (source, is_package) in gingham_modules().items():
        if not name.startswith("gingham.kernels"):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            found += [f"{name}:{node.lineno}: {t}" for t in targets
                      if t.split(".")[0] == "gingham" and not (t + ".").startswith("gingham.kernels.")]
    assert not found, found


def test_import_contracts_hold(tmp_path):
    """pyproject.toml's [tool.importlinter] contracts: the layers, top to bottom, and no circle in any folder."""
    pytest.importorskip("importlinter", reason="the import contracts need the test extra: pip install 'gingham[test]'")
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    assert lint, "import-linter is installed but its lint-imports command is not on PATH"
    proc = subprocess.run([lint, str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "0 broken" in proc.stdout
