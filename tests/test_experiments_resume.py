"""Resumable experiments (experiments/resume.py) and the --size profiles (quick | default |
paper, experiments/__init__.py and learned.py): an interrupted run, rerun, ends with the
same files as an uninterrupted one and recomputes only the unfinished units; a changed
setting never reuses a stored unit; the paper size sets the Sec. V training sizes."""

import json
import math
import shutil

import numpy as np
import pytest

from gnuradio.isac import experiments
from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.experiments import crb, learned, sweep, tradeoff
from gnuradio.isac.experiments.common import Context
from gnuradio.isac.experiments.resume import ResultStore, code_digest


def run_cli(out, name, *extra):
    """In this process (--workers 1): the tests count and interrupt the units' calls here."""
    return isac_eval.main(
        ["--experiment", name, "--out", str(out), "--quick", "--no-progress", "--workers", "1", *extra]
    )


def summary(folder, name):
    return json.loads((folder / f"{name}.json").read_text())


class Interrupt:
    """Wraps a function: raises KeyboardInterrupt on call number ``at`` (1-based), counts calls."""

    def __init__(self, fn, at=None):
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(*a, **k)


def test_interrupted_fig9_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    """Ctrl-C after 4 of the 9 sweep points; the rerun computes the other 5 and writes the CSV
    an uninterrupted run writes, bit for bit."""
    assert run_cli(tmp_path / "whole", "fig9") == 0
    whole = (tmp_path / "whole" / "fig9.csv").read_bytes()
    n_points = len(whole.splitlines()) - 1

    cut = Interrupt(tradeoff.point, at=5)
    monkeypatch.setattr(tradeoff, "point", cut)
    assert run_cli(tmp_path / "cut", "fig9") == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and ".partial/fig9" in err and "same command" in err
    assert not (tmp_path / "cut" / "fig9.csv").exists()
    assert len(list((tmp_path / "cut" / ".partial" / "fig9").glob("*.json"))) == 4

    count = Interrupt(tradeoff.point)
    monkeypatch.setattr(tradeoff, "point", count)
    assert run_cli(tmp_path / "cut", "fig9") == 0
    assert count.calls == n_points - 4
    assert (tmp_path / "cut" / "fig9.csv").read_bytes() == whole
    s = summary(tmp_path / "cut", "fig9")
    assert s["resume"]["units_reused"] == 4 and s["resume"]["units_computed"] == n_points - 4
    assert "4 of 9 units from an earlier run" in capsys.readouterr().out

    # a rerun of the finished command computes nothing; --fresh computes everything again
    assert run_cli(tmp_path / "cut", "fig9") == 0
    assert count.calls == n_points - 4
    assert run_cli(tmp_path / "cut", "fig9", "--fresh") == 0
    assert count.calls == 2 * n_points - 4
    assert (tmp_path / "cut" / "fig9.csv").read_bytes() == whole


def test_changed_settings_never_reuse_a_stored_unit(tmp_path, monkeypatch):
    count = Interrupt(tradeoff.point)
    monkeypatch.setattr(tradeoff, "point", count)
    assert run_cli(tmp_path, "fig9") == 0
    first = count.calls
    for extra in (["--set", "run.frames=61"], ["--set", "run.seed=7"], ["--kernel", "numpy"], ["--temperature", "0.2"]):
        before = count.calls
        assert run_cli(tmp_path, "fig9", *extra) == 0
        assert count.calls - before == first, extra  # every point again


def test_fig7_and_crb_resume_per_curve_and_per_point(tmp_path, monkeypatch):
    assert run_cli(tmp_path / "whole", "fig7") == 0
    cut = Interrupt(sweep.sweep_curve, at=2)  # the dOMP curve
    monkeypatch.setattr(sweep, "sweep_curve", cut)
    assert run_cli(tmp_path / "cut", "fig7") == 130
    monkeypatch.setattr(sweep, "sweep_curve", Interrupt(sweep.sweep_curve.fn))
    assert run_cli(tmp_path / "cut", "fig7") == 0
    assert sweep.sweep_curve.calls == 1
    assert (tmp_path / "cut" / "fig7.csv").read_bytes() == (tmp_path / "whole" / "fig7.csv").read_bytes()

    assert run_cli(tmp_path / "crb", "crb") == 0
    first = (tmp_path / "crb" / "crb.csv").read_bytes()
    s = summary(tmp_path / "crb", "crb")
    assert s["resume"]["units_computed"] == len(crb.QUICK_SNR_DB) * len(crb.METHODS)
    assert run_cli(tmp_path / "crb", "crb") == 0
    assert summary(tmp_path / "crb", "crb")["resume"]["units_computed"] == 0
    assert (tmp_path / "crb" / "crb.csv").read_bytes() == first


def test_result_store_round_trips_nan_and_numpy_and_recomputes_a_damaged_unit(tmp_path, capsys):
    store = ResultStore(str(tmp_path), {"experiment": "x"})
    value = {"a": float("nan"), "b": np.float64(1.25), "n": np.int64(7), "v": np.arange(3), "s": "text"}
    assert store.unit({"k": 1}, lambda: value) is value
    got = ResultStore(str(tmp_path), {"experiment": "x"}).unit({"k": 1}, lambda: pytest.fail("recomputed"))
    assert math.isnan(got["a"]) and got["b"] == 1.25 and got["n"] == 7 and type(got["n"]) is int
    assert got["v"] == [0, 1, 2] and got["s"] == "text"
    # another common part (e.g. another experiment) or key: another unit
    assert ResultStore(str(tmp_path), {"experiment": "y"}).unit({"k": 1}, lambda: 2) == 2
    assert store.unit({"k": 2}, lambda: 3) == 3
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert {f.stat().st_mode & 0o777 for f in tmp_path.glob("*.json")} == {0o666 & ~umask}
    # a damaged file is computed again, and replaced
    files = sorted(tmp_path.glob("*.json"))
    for f in files:
        f.write_text("{not json")
    again = ResultStore(str(tmp_path), {"experiment": "x"})
    capsys.readouterr()
    assert again.unit({"k": 2}, lambda: 4) == 4 and again.computed == 1 and again.reused == 0
    assert again.damaged == 1  # never silently: one line naming the file
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is damaged (JSONDecodeError); computing it again" in err[0] and str(tmp_path) in err[0]
    assert ResultStore(str(tmp_path), {"experiment": "x"}).unit({"k": 2}, lambda: 5) == 4
    with pytest.raises(TypeError, match="cannot store"):
        store.unit({"k": 3}, lambda: {"bad": object()})
    assert code_digest() == code_digest() and len(code_digest()) == 64


def test_sizes_set_the_frame_counts_and_the_paper_training_profile(tmp_path, capsys):
    quick = experiments.experiment_scenario("fig9", size="quick")
    default = experiments.experiment_scenario("fig9")
    paper = experiments.experiment_scenario("fig9", size="paper")
    assert quick.run["frames"] < default.run["frames"] < paper.run["frames"] == 5000
    assert experiments.experiment_scenario("fig9", quick=True).hash() == quick.hash()
    assert experiments.experiment_scenario("fig7", size="paper").run["calibration_frames"] == 20000
    # a --set still wins over the size
    assert experiments.experiment_scenario("fig7", None, ["run.frames=9"], size="paper").run["frames"] == 9
    with pytest.raises(experiments.ExperimentError, match="--size must be one of quick, default, paper"):
        experiments.experiment_scenario("fig7", size="huge")

    # paper training: single target (fig5 / fig6) B = 3000, 100,000 steps; multi-target B = 1500, 25,000
    fig5 = Context("fig5", experiments.experiment_scenario("fig5", size="paper"), str(tmp_path), size="paper")
    opts = learned.training_options(fig5, "dictionary_limited")  # the method's own trainer's options
    assert type(opts).__name__ == "TrainOptions" and (opts.batch, opts.iterations) == (3000, 100_000)
    assert opts.method == "dictionary" and opts.dictionary_points == 156 and opts.curriculum_steps == 40_000
    opts = learned.training_options(fig5, "nn")
    assert type(opts).__name__ == "NnOptions" and (opts.batch, opts.iterations, opts.n_theta, opts.n_tau) == (
        3000,
        100_000,
        320,
        128,
    )
    assert learned.training_options(fig5, "nn_limited").limited
    fig9 = Context("fig9", paper, str(tmp_path), size="paper")
    opts = learned.training_options(fig9, "impairment")
    assert (opts.method, opts.batch, opts.iterations, opts.curriculum_steps) == ("impairment", 1500, 25_000, 10_000)
    # the default size trains with isac-train's --quick profile
    default_ctx = Context("fig9", default, str(tmp_path))
    assert default_ctx.size == "default" and not default_ctx.quick
    assert (
        learned.training_options(default_ctx, "impairment").batch,
        learned.training_options(default_ctx, "impairment").iterations,
    ) == (32, 1000)
    assert learned.cache_dir(fig9).endswith("weights-paper") and learned.cache_dir(default_ctx).endswith("weights")

    # command line
    with pytest.raises(SystemExit):
        isac_eval.main(["--size", "paper"])
    assert "--size needs --experiment" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        isac_eval.main(["--experiment", "fig3", "--out", str(tmp_path), "--quick", "--size", "paper"])
    assert "contradicts --size paper" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert run_cli(tmp_path / "gpu", "fig9", "--device", "cuda") == 2
        assert "--device cuda but torch sees no CUDA device" in capsys.readouterr().err
    assert (
        isac_eval.main(["--experiment", "fig3", "--out", str(tmp_path / "f3"), "--size", "quick", "--no-progress"]) == 0
    )
    assert summary(tmp_path / "f3", "fig3")["size"] == "quick"


def test_paper_size_never_takes_the_shipped_weights(tmp_path, monkeypatch, capsys):
    """At the paper size a missing impairment file is trained (paper profile), not replaced by
    the shipped quick-trained weights; the training is asked for with the paper's sizes."""
    asked = []
    real_train_weights = learned.train_weights

    def fake_train(ctx, key, path):
        asked.append((key, learned.training_options(ctx, key)))
        raise RuntimeError("stop here")

    monkeypatch.setattr(learned, "train_weights", fake_train)
    ctx = Context("fig9", experiments.experiment_scenario("fig9", size="paper"), str(tmp_path), size="paper")
    with pytest.raises(RuntimeError, match="stop here"):
        learned.resolve_weights(ctx, "impairment")
    assert asked[0][0] == "impairment" and asked[0][1].iterations == 25_000
    default = Context("fig9", experiments.experiment_scenario("fig9"), str(tmp_path))
    assert learned.resolve_weights(default, "impairment")["source"] == "shipped"
    # the training itself says what it is about to do, and warns about paper sizes on the CPU
    from gnuradio.isac.trainer import train as train_module

    def no_training(*a, **k):
        raise RuntimeError("not here")

    monkeypatch.setattr(train_module, "train", no_training)
    monkeypatch.setattr(learned, "train_weights", real_train_weights)
    with pytest.raises(RuntimeError, match="not here"):
        learned.train_weights(ctx, "impairment", str(tmp_path / "w" / "impairment.safetensors"))
    err = capsys.readouterr().err
    assert "training them (paper profile: B = 1500, 25000 steps) on cpu" in err
    assert "warning: paper-size training on the CPU takes days" in err


def test_on_the_fly_training_resumes_from_its_checkpoint(tmp_path, capsys):
    """An interrupted on-the-fly training leaves NAME.ckpt.safetensors; the next run resumes
    from it (here the checkpoint of the last step: nothing is left to train)."""
    sc = experiments.experiment_scenario("fig5", size="quick")
    ctx = Context("fig5", sc, str(tmp_path), size="quick", progress=None)
    first = learned.resolve_weights(ctx, "dictionary_limited")
    err = capsys.readouterr().err
    assert "no weights for dictionary_limited: training them (quick profile: B = 8, 20 steps) on cpu" in err
    assert "resuming" not in err and "warning" not in err
    assert first["source"] == "trained" and first["resumed"] is False and first["steps"] == learned.TINY_STEPS
    path = tmp_path / "weights-quick" / "dictionary_limited.safetensors"
    assert path.is_file() and path.with_name("dictionary_limited.ckpt.safetensors").is_file()
    path.unlink()  # as if the run stopped after its last checkpoint, before writing the weights
    again = learned.resolve_weights(ctx, "dictionary_limited")
    assert again["source"] == "trained" and again["resumed"] is True and again["steps"] == learned.TINY_STEPS
    assert "(resuming from its checkpoint)" in capsys.readouterr().err
    assert path.is_file()


def _damage(kind):
    """A unit record (dict) damaged in place: as an edit, a copy or a bad disk might leave it."""

    def null(record):
        record["result"] = None

    def shape(record):
        record["result"] = [1, 2]  # a list where the experiment reads a dict

    def keys(record):
        record["result"] = {"p_md": 0.5}  # a dict of another shape

    def other(record):
        record["key"] = {**record["key"], "eta": -1.0}  # another unit's record under this name

    def bare(record):
        record.pop("key")

    return {"null": null, "shape": shape, "keys": keys, "other": other, "bare": bare}[kind]


@pytest.fixture(scope="module")
def finished_fig9(tmp_path_factory):
    """The folder of one finished fig9 run (--quick): its CSV and its unit files."""
    out = tmp_path_factory.mktemp("fig9")
    assert run_cli(out, "fig9") == 0
    return out


@pytest.mark.parametrize(
    "kind, why",
    [
        ("null", "its result is null"),
        ("shape", "its result does not match its digest"),
        ("keys", "its result does not match its digest"),
        ("other", "it holds another unit"),
        ("bare", "not a unit record"),
    ],
)
def test_a_damaged_unit_of_the_wrong_shape_or_null_is_reported_and_recomputed(
    finished_fig9, tmp_path, capsys, kind, why
):
    """Valid JSON, wrong content: a null result, a result of another shape, another unit's record.
    These reached the experiment, which raised TypeError / KeyError; now each is one note naming
    the file and the reason, the unit is computed again and the CSV is the undamaged run's."""
    tmp_path = tmp_path / "run"
    shutil.copytree(finished_fig9, tmp_path)
    whole = (tmp_path / "fig9.csv").read_bytes()
    unit = sorted((tmp_path / ".partial" / "fig9").glob("*.json"))[3]
    record = json.loads(unit.read_text())
    _damage(kind)(record)
    unit.write_text(json.dumps(record))
    capsys.readouterr()
    assert run_cli(tmp_path, "fig9") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: resume unit {unit} is damaged ({why}); computing it again"]
    assert (tmp_path / "fig9.csv").read_bytes() == whole
    s = summary(tmp_path, "fig9")
    assert s["resume"]["units_computed"] == 1 and s["resume"]["units_reused"] == len(whole.splitlines()) - 2
