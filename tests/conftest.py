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


def run_experiment(out, name, *extra):
    """isac-eval --experiment NAME --out OUT --quick --no-progress EXTRA...: its exit status."""
    from gnuradio.isac.cli import eval as isac_eval

    return isac_eval.main(["--experiment", name, "--out", str(out), "--quick", "--no-progress", *extra])


@pytest.fixture(scope="session")
def quick_experiments(tmp_path_factory):
    """Each experiment once, --quick, through the command line, in this process (--workers 1):
    name -> its output folder (tests/test_experiments.py checks them, tests/test_eval_dask.py
    compares the same runs on Dask workers with them)."""
    from gnuradio.isac import experiments

    out = {}
    for name in experiments.EXPERIMENTS:
        folder = tmp_path_factory.mktemp(name)
        assert run_experiment(folder, name, "--workers", "1", *fig6_weights(name, out)) == 0
        out[name] = folder
    return out


def fig6_weights(name, out):
    """fig6 takes fig5's (tiny, on-the-fly) weights on the unseen sector, as the paper does."""
    return ["--weights-dir", str(out["fig5"] / "weights-quick")] if name == "fig6" and "fig5" in out else []
