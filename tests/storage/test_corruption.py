"""Every file of a small index damaged in every way: a plain open + search and an open + verify raise a typed
error naming the damaged file (or the manifest), or return the undamaged index's results. Never a crash.

Cases run in batches in subprocesses (tests/storage/corruption_worker.py), so that a segfault fails the case that
caused it instead of killing pytest.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gingham

sys.path.insert(0, str(Path(__file__).parent))
import corruption_worker as cw  # noqa: E402

WORKER = Path(__file__).parent / "corruption_worker.py"
N_WORKERS = 2


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("corruption") / "ix"
    ix, queries = cw.build(root)
    ids, scores, lex_ids, lex_scores = cw.search(root, queries)
    baseline = root.parent / "baseline.npz"
    np.savez(baseline, ids=ids, scores=scores, lex_ids=lex_ids, lex_scores=lex_scores,
             **{f"q{i}": q for i, q in enumerate(queries)})
    return root, baseline


def run_batches(root: Path, baseline: Path, names: list[str]) -> tuple[dict, dict]:
    """Results by case name, and {case: return code} for every case whose worker died while running it (the
    remaining cases of its batch run in a new worker)."""
    scratch = root.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_NUM_THREADS": "1"}
    results, crashed = {}, {}
    pending = [names[i::N_WORKERS] for i in range(N_WORKERS)]
    while any(pending):
        procs = [(batch, subprocess.Popen([sys.executable, str(WORKER), str(root), str(baseline), str(scratch),
                                           *batch], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env)) for batch in pending if batch]
        pending = []
        for batch, proc in procs:
            out, err = proc.communicate(timeout=600)
            started = None
            for line in out.splitlines():
                kind, _, rest = line.partition(" ")
                if kind == "start":
                    started = rest
                elif kind == "result":
                    name, _, payload = rest.partition(" ")
                    results[name] = json.loads(payload)
                    started = None
            if proc.returncode != 0:
                assert started is not None, f"worker failed outside any case (rc {proc.returncode}): {err[-2000:]}"
                crashed[started] = f"{proc.returncode}, stderr: {err[-600:]}"
                pending.append(batch[batch.index(started) + 1:])
    return results, crashed


def judge(case: cw.Case, step: str, got: dict) -> str | None:
    """Why ``got`` (what ``step`` did on the damaged copy) is wrong, or None."""
    if got["kind"] == "untyped":
        return f"{step} raised an untyped {got['type']}: {got['message']}"
    if got["kind"] == "error":
        if not any(t in got["message"] for t in case.targets):
            return f"{step} raised {got['type']} not naming {case.targets}: {got['message']}"
        return None
    if step == "verify":
        return "verify passed a damaged index"
    if got["value"] == "differs" and not case.may_differ:
        return "a plain open + search silently returned other results"
    return None


def test_every_damage_is_a_typed_error_or_the_same_results(built):
    root, baseline = built
    cases = cw.cases(root)
    assert len(cases) > 300
    names = [c.name for c in cases]
    assert len(set(names)) == len(names)
    results, crashed = run_batches(root, baseline, names)
    problems = [f"{name}: the worker died (a crash) with return code {rc}" for name, rc in crashed.items()]
    for case in cases:
        if case.name in crashed:
            continue
        got = results[case.name]
        for step in ("open", "verify"):
            why = judge(case, step, got[step])
            if why:
                problems.append(f"{case.name}: {why}")
    assert not problems, f"{len(problems)} of {len(cases)} cases failed:\n" + "\n".join(problems)


def test_undamaged_copy_passes(built, tmp_path):
    import shutil

    root, _ = built
    shutil.copytree(root, tmp_path / "ix")
    gingham.Index.open(tmp_path / "ix").verify()


@pytest.mark.parametrize("content", ["[]", "null", '{"format": "gingham-index", "format_version": 2}', "{oops"])
def test_cli_verify_prints_one_line_and_fails(built, tmp_path, content):
    import shutil

    from typer.testing import CliRunner

    from gingham.app.cli import app

    root, _ = built
    shutil.copytree(root, tmp_path / "ix")
    (tmp_path / "ix" / "manifest.json").write_text(content)
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "ix")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "manifest.json" in lines[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("content,error", [("[]", gingham.IndexFormatError), ("null", gingham.IndexFormatError),
                                           ('{"format": "gingham-index", "format_version": 2}',
                                            gingham.IndexCorruptError)])
def test_manifest_that_is_not_an_object_or_lacks_keys_is_typed(built, tmp_path, content, error):
    import shutil

    root, _ = built
    shutil.copytree(root, tmp_path / "ix")
    (tmp_path / "ix" / "manifest.json").write_text(content)
    with pytest.raises(error, match="manifest.json"):
        gingham.Index.open(tmp_path / "ix")
