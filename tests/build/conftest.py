import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from streamhelpers import corpus  # noqa: E402


@pytest.fixture(scope="session")
def small_corpus():
    return corpus()
