"""fast-plaid driver, run with the peers' Python (no gingham import needed):

    .venv-peers/bin/python bench/peers/fastplaid_driver.py INPUT_DIR OUT.json --config '{"nbits": 2}'

The driver itself ships in the package (gingham/evaluation/drivers/fastplaid.py) so that an installed
``gingham bench --peers fast-plaid`` finds it; this wrapper runs that file.
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "engine" / "evaluation" / "drivers" / "fastplaid.py"),
                   run_name="__main__")
