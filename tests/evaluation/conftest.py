import pytest

from evalhelpers import WordEncoder


@pytest.fixture
def word_encoder():
    return WordEncoder()
