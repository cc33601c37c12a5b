"""Gingham as a user installs it: no shadowing of other packages from the checkout, a wheel that ships every
package, one version everywhere.

The wheel itself is installed into a fresh venv and the end-to-end tests run against it from outside the checkout
by ``.ci/run`` (``GINGHAM_WHEEL_CHECK=1``), where ``test_gingham_comes_from_site_packages`` checks where it came from.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import gingham

ROOT = Path(__file__).resolve().parents[2]


def _in_checkout(path: str | None) -> bool:
    """Whether ``path`` is one of the checkout's own source folders (a venv inside the checkout does not count)."""
    if path is None:
        return False
    path = Path(path).resolve()
    return any(path.is_relative_to(ROOT / folder) for folder in ("kernels", "engine", "tests", "bench"))


def _run_from_root(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


_PROBE = """
import importlib.metadata, json, sys
out = {"path0": sys.path[0]}
try:
    importlib.metadata.version("kernels")
    installed = True
except importlib.metadata.PackageNotFoundError:
    installed = False
out["installed"] = installed
try:
    import kernels
    out["kernels"] = getattr(kernels, "__file__", None) or list(getattr(kernels, "__path__", []))
except ModuleNotFoundError as exc:
    out["kernels"] = None
    out["error"] = str(exc)
out["gingham_kernels"] = __import__("gingham.kernels", fromlist=["topk"]).__file__
for name in %r:
    try:
        module = __import__(name, fromlist=["_"])
        out[name] = module.__file__
    except ImportError as exc:
        out[name] = "ImportError: " + str(exc)
print(json.dumps(out))
"""

_MODELS = ["transformers.models.lfm2.modeling_lfm2", "transformers.models.bert.modeling_bert"]


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_the_checkout_kernels_folder_never_shadows_a_top_level_kernels(how):
    """From the repository root (``python -c``, ``python -`` and ``python -m`` put it first on sys.path),
    ``import kernels`` is Hugging Face's package when installed and a ModuleNotFoundError otherwise, never
    ``./kernels``; transformers' LFM2 and BERT models import; ``gingham.kernels`` is still Gingham's kernels."""
    models = _MODELS if importlib.util.find_spec("transformers") is not None else []
    probe = _PROBE % (models,)
    if how == "-c":
        proc = _run_from_root("-c", probe)
    else:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
        proc = subprocess.run([sys.executable, "-"], input=probe, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["installed"]:
        assert out["kernels"] is not None and not _in_checkout(out["kernels"]), out
    else:
        assert out["kernels"] is None and "No module named 'kernels'" in out["error"], out
    for name in models:
        assert not out[name].startswith("ImportError"), out[name]
        assert not _in_checkout(out[name]), out
    assert out["gingham_kernels"].endswith(os.path.join("kernels", "__init__.py"))


def test_pytest_from_the_root_sees_the_real_kernels():
    """This very process (pytest started from anywhere, the root included) does not hold the checkout's folder as
    ``kernels``."""
    module = sys.modules.get("kernels")
    if module is not None:
        assert not _in_checkout(getattr(module, "__file__", None)), module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist and the wheel, built from the checkout as a user's ``python -m build`` would."""
    pytest.importorskip("build", reason="building needs the test extra: pip install 'gingham[test]'")
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not a checkout")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_wheel_ships_every_package_and_nothing_else(built):
    wheel = next(built.glob("gingham-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).parent.as_posix() for n in names if n.endswith("/__init__.py")}
    expected = {"gingham"} | {
        ("gingham/" + p.parent.relative_to(ROOT / "engine").as_posix()).rstrip("/.")
        for p in (ROOT / "engine").rglob("__init__.py")} | {"gingham/kernels"}
    assert expected <= shipped, f"missing from the wheel: {sorted(expected - shipped)}"
    modules = {n for n in names if n.endswith(".py")}
    for source in list((ROOT / "engine").rglob("*.py")) + list((ROOT / "kernels").rglob("*.py")):
        base = "gingham" if source.is_relative_to(ROOT / "engine") else "gingham/kernels"
        top = ROOT / ("engine" if base == "gingham" else "kernels")
        assert f"{base}/{source.relative_to(top).as_posix()}" in modules, source
    tops = {n.split("/")[0] for n in names}
    assert tops == {"gingham", wheel.name.split("-")[0] + "-" + gingham.__version__ + ".dist-info"}, tops
    meta = zipfile.ZipFile(wheel).read(f"gingham-{gingham.__version__}.dist-info/METADATA").decode()
    assert f"Version: {gingham.__version__}\n" in meta
    from packaging.requirements import Requirement

    pinned = [line for line in meta.splitlines() if line.startswith("Requires-Dist: ")
              and any(spec.operator in ("==", "===") for spec in Requirement(line.split(": ", 1)[1]).specifier)]
    assert not pinned, f"exact pins: {pinned}"


@pytest.mark.slow
def test_the_distributions_pass_twine_check(built):
    pytest.importorskip("twine", reason="twine comes with the test extra")
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built.iterdir())],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_one_version_everywhere():
    """The package, its metadata and ``gingham --version`` agree (one source: gingham/_version.py)."""
    assert importlib.metadata.version("gingham") == gingham.__version__
    script = Path(sys.executable).with_name("gingham")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gingham.app.cli"]
    proc = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gingham {gingham.__version__}"


@pytest.mark.skipif(os.environ.get("GINGHAM_WHEEL_CHECK") != "1",
                    reason="the wheel check of .ci/run sets GINGHAM_WHEEL_CHECK=1 in the wheel's venv")
def test_gingham_comes_from_site_packages():
    """Run by .ci/run against the installed wheel, from a directory outside the checkout."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (gingham, importlib.import_module("gingham.kernels"), importlib.import_module("gingham.storage.docstore")):
        path = Path(module.__file__).resolve()
        assert path.is_relative_to(site), f"{module.__name__} from {path}, not from {site}"
        assert not _in_checkout(str(path)), f"{module.__name__} from the checkout: {path}"
    dist = importlib.metadata.distribution("gingham")
    direct = dist.read_text("direct_url.json")
    assert direct is None or '"editable": true' not in direct, direct


def test_is_cached_tells_a_cold_cache_from_a_warm_one(tmp_path):
    """``gingham.kernels.warmup.is_cached`` (which decides whether a CLI shows a compile progress bar) says False
    for an empty numba cache and True once warmup has run against the cache in use."""
    from gingham.kernels.warmup import is_cached, warmup

    warmup()
    assert is_cached() is True
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty"))
    proc = subprocess.run([sys.executable, "-c", "from gingham.kernels.warmup import is_cached; print(is_cached())"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_compile_kernels_shows_progress_only_when_the_cache_is_cold(monkeypatch, capsys):
    from gingham.kernels import warmup as warmup_module  # noqa: F401  (the function; the module is below)
    from gingham.search import warm

    module = sys.modules["gingham.kernels.warmup"]
    steps = []
    monkeypatch.setattr(module, "warmup", lambda progress=None: [progress(i + 1, 10) or steps.append(i)
                                                                  for i in range(10)])
    monkeypatch.setattr(module, "is_cached", lambda **_: True)
    assert warm.compile_kernels(show_progress=True) is False and steps == []
    monkeypatch.setattr(module, "is_cached", lambda **_: False)
    assert warm.compile_kernels(show_progress=True) is True and len(steps) == 10
    assert "compile kernels" in capsys.readouterr().err


@pytest.mark.skipif(os.environ.get("GINGHAM_WHEEL_CHECK") != "1",
                    reason="the wheel check of .ci/run sets GINGHAM_WHEEL_CHECK=1 in the wheel's venv")
def test_kernels_cache_for_a_read_only_site_packages(tmp_path):
    """A wheel in a read-only site-packages: ``gingham warmup`` compiles into numba's user-wide cache (under the
    user's home), and a later process finds every kernel there."""
    package = Path(gingham.__file__).resolve().parent
    modes = {p: p.stat().st_mode for p in [package, *package.rglob("*")]}
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    try:
        for path in modes:
            path.chmod(path.stat().st_mode & ~0o222)
        if os.access(package, os.W_OK):
            pytest.skip("running as a user that ignores file modes (root): cannot make site-packages read-only")
        gingham_cli = Path(sys.executable).with_name("gingham")
        proc = subprocess.run([str(gingham_cli), "warmup", "--quiet"], env=env, capture_output=True, text=True,
                              timeout=900, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        proc = subprocess.run([sys.executable, "-c", "from gingham.kernels.warmup import is_cached; "
                               "print(is_cached())"], env=env, capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)
        assert proc.stdout.strip() == "True", proc.stderr[-3000:]
        assert any(home.rglob("*.nbi")), "no numba index under the user's cache"
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_test_files_have_unique_basenames():
    """The tests are not packages (pytest's rootdir-relative imports): two test files of the same name in two
    folders make the whole run stop at collection ("import file mismatch")."""
    names: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name != "conftest.py" and path.name != "__init__.py":
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {n: p for n, p in names.items() if len(p) > 1}
