"""Time to first result: how long a new process takes to answer, as a user meets Gingham.

Installs nothing. Each figure is a fresh process (median, min and max over ``--runs``):

  (a) python: ``import gingham`` + ``Index.open`` + the first ``search`` with query embeddings (in-process time
      and the whole process's wall time);
  (b) cli: the README's ``gingham search INDEX "¿En qué año llegó el hombre a la Luna?" "Wer hat das Penicillin
      entdeckt?" --top-k 3`` on the sample index (wall time);
  (c) http: ``gingham serve INDEX``: seconds until ``GET /ready`` answers 200, then the first ``POST /search``
      with a text query (and the second, for scale).

each with a warm numba cache (after ``gingham warmup``) and a cold one (an empty ``NUMBA_CACHE_DIR`` per run).
The sample index is built once from ``examples/sample.jsonl`` with the default encoder (multilingual-e5-small,
offline) unless ``--index`` names one. ``--gingham`` / ``--python`` point at another install (e.g. an older
release in its own venv) to compare before and after on the same machine in one run.

    python bench/bench_first_result.py --runs 5 --out docs/benchmarks/first-result

Needs the machine to itself: report the load average printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["¿En qué año llegó el hombre a la Luna?", "Wer hat das Penicillin entdeckt?"]

PYTHON_FIRST_SEARCH = """
import time
t0 = time.perf_counter()
import numpy as np
import gingham
t1 = time.perf_counter()
index = gingham.Index.open({path!r})
t2 = time.perf_counter()
rng = np.random.default_rng(0)
query = rng.standard_normal((32, index.dim)).astype(np.float32)
query /= np.linalg.norm(query, axis=1, keepdims=True)
res = index.search(query, top_k=3)
t3 = time.perf_counter()
index.search(query, top_k=3)
t4 = time.perf_counter()
import json, sys
print(json.dumps({{"import_s": t1 - t0, "open_s": t2 - t1, "first_search_s": t3 - t2, "in_process_s": t3 - t0,
                  "second_search_s": t4 - t3, "torch_imported": "torch" in sys.modules,
                  "transformers_imported": "transformers" in sys.modules}}))
"""


NUMBA_FLOOR = """
import time
t0 = time.perf_counter()
import numpy as np
import numba
import floor_kernel
x = np.ones(8, dtype=np.float32)
floor_kernel.total(x)
t1 = time.perf_counter()
import json
print(json.dumps({"in_process_s": t1 - t0}))
"""

FLOOR_KERNEL = """
import numba


@numba.njit(cache=True)
def total(x):
    s = 0.0
    for v in x:
        s += v
    return s
"""


def run_floor(python: str, work: Path, env: dict) -> dict:
    """The floor any numba program pays: numpy, numba and one cached kernel's first call in a fresh process."""
    folder = work / "floor"
    folder.mkdir(exist_ok=True)
    (folder / "floor_kernel.py").write_text(FLOOR_KERNEL)
    t = time.perf_counter()
    proc = subprocess.run([python, "-c", NUMBA_FLOOR], env=dict(env, PYTHONPATH=str(folder)), capture_output=True,
                          text=True, cwd=folder)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"floor failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None, timeout: float = 600.0) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def run_python(python: str, index: Path, env: dict) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([python, "-c", PYTHON_FIRST_SEARCH.format(path=str(index))], env=env, capture_output=True,
                          text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"(a) failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def run_cli(gingham: str, index: Path, env: dict) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([gingham, "search", str(index), *QUERIES, "--top-k", "3", "--json"], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"(b) failed:\n{proc.stderr[-2000:]}")
    first = [json.loads(line)["id"] for line in proc.stdout.splitlines() if line.startswith("{")
             and json.loads(line)["rank"] == 1]
    return {"process_s": wall, "first_ids": first}


def run_http(gingham: str, index: Path, env: dict, has_ready: bool) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([gingham, "serve", str(index), "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    try:
        probe = "/ready" if has_ready else "/health"
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"(c) the server exited:\n{proc.stderr.read()[-2000:]}")
            try:
                status, _ = http(base + probe, timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        ready = time.perf_counter() - t0
        t = time.perf_counter()
        status, out = http(base + "/search", {"queries": QUERIES[:1], "top_k": 3})
        first = time.perf_counter() - t
        t = time.perf_counter()
        http(base + "/search", {"queries": QUERIES[1:], "top_k": 3})
        second = time.perf_counter() - t
        if status != 200:
            raise SystemExit(f"(c) search failed: {status} {out}")
        return {"ready_s": ready, "first_search_s": first, "second_search_s": second,
                "first_id": out["results"][0][0]["id"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--index", type=Path, help="a text index (default: build the sample index once)")
    ap.add_argument("--gingham", default=shutil.which("gingham") or "gingham", help="the gingham command to time")
    ap.add_argument("--python", default=sys.executable, help="the Python whose gingham (a) imports")
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--no-ready", action="store_true", help="the server has no /ready (older releases): wait for "
                                                             "/health instead")
    ap.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True, help="also time a cold cache")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gingham-first-result-"))
    index = args.index
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    if index is None:
        index = work / "sample-index"
        print(f"building the sample index in {index} ...", flush=True)
        subprocess.run([args.gingham, "index", str(ROOT / "examples" / "sample.jsonl"), str(index), "--quiet"],
                       env=env, check=True)
    warm_dir = work / "numba-warm"
    results: dict = {"label": args.label, "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                     "load_before": loadavg(), "modes": {}}
    modes = ["warm"] + (["cold"] if args.cold else [])
    for mode in modes:
        rows: dict[str, list[dict]] = {"python": [], "cli": [], "http": [], "floor": []}
        for run in range(args.runs):
            run_env = dict(env)
            if mode == "warm":
                run_env["NUMBA_CACHE_DIR"] = str(warm_dir)
                if run == 0:
                    subprocess.run([args.gingham, "warmup"], env=run_env, check=True, capture_output=True)
            for what, fn in (("floor", lambda e: run_floor(args.python, work, e)),
                             ("python", lambda e: run_python(args.python, index, e)),
                             ("cli", lambda e: run_cli(args.gingham, index, e)),
                             ("http", lambda e: run_http(args.gingham, index, e, not args.no_ready))):
                if mode == "cold":
                    cold = work / f"numba-cold-{what}-{run}"
                    run_env = dict(env, NUMBA_CACHE_DIR=str(cold))
                rows[what].append(fn(run_env))
                print(f"{mode} {what} run {run}: {json.dumps(rows[what][-1])}", flush=True)
        results["modes"][mode] = {
            "numba_floor_in_process_s": summary([r["in_process_s"] for r in rows["floor"]]),
            "numba_floor_process_s": summary([r["process_s"] for r in rows["floor"]]),
            "python_in_process_s": summary([r["in_process_s"] for r in rows["python"]]),
            "python_process_s": summary([r["process_s"] for r in rows["python"]]),
            "python_parts": rows["python"],
            "cli_process_s": summary([r["process_s"] for r in rows["cli"]]),
            "cli_first_ids": rows["cli"][0]["first_ids"],
            "http_ready_s": summary([r["ready_s"] for r in rows["http"]]),
            "http_first_search_s": summary([r["first_search_s"] for r in rows["http"]]),
            "http_second_search_s": summary([r["second_search_s"] for r in rows["http"]]),
        }
    results["load_after"] = loadavg()
    lines = [f"# time to first result: {args.label}", "",
             f"CPU: {results['cpu']} ({results['cores']} cores), Python {results['python']}, load average before "
             f"{results['load_before']}, after {results['load_after']}; {args.runs} fresh processes each "
             "(median [min–max], seconds)", "",
             "| cache | numba floor: one cached kernel's first call, whole process | (a) import+open+first search, "
             "in-process | (a) whole process | (b) `gingham search` (2 queries) | (c) serve → /ready | (c) first HTTP "
             "search after ready | (c) second |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(s: dict) -> str:
        return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"

    for mode, m in results["modes"].items():
        lines.append(f"| {mode} | {cell(m['numba_floor_process_s'])} | {cell(m['python_in_process_s'])} | "
                     f"{cell(m['python_process_s'])} | {cell(m['cli_process_s'])} | {cell(m['http_ready_s'])} | {cell(m['http_first_search_s'])} | "
                     f"{cell(m['http_second_search_s'])} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = args.label.replace(" ", "-").replace("/", "-")
        (args.out / f"{name}.json").write_text(json.dumps(results, indent=2))
        (args.out / f"{name}.md").write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
