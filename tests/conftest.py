"""Shared fixtures. The package under test is the installed ``gnuradio.isac``."""

import numpy as np
import pytest

from gnuradio.isac.config import Scenario


@pytest.fixture
def scenario():
    return Scenario.default()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
