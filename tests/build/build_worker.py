"""Run a slow streaming build (killed by test_resume.py): python build_worker.py INDEX_PATH DELAY"""

import sys

from streamhelpers import CHUNK_TOKENS, OPTIONS, corpus, source

from gingham.build.streaming import build

if __name__ == "__main__":
    path, delay = sys.argv[1], float(sys.argv[2])
    build(path, source(corpus(), delay=delay), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    print("done", flush=True)
