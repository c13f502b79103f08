import pytest

from .synthetic import make_survey


@pytest.fixture
def survey():
    return make_survey()
