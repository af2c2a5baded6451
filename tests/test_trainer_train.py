"""isac-train (trainer/train.py, cli/train.py) on a tiny scenario: files, determinism,
resume, both methods, refusals. Kept small: the whole file runs in a few seconds."""

import csv
import json

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

torch.set_num_threads(1)  # small tensors: one thread is faster and immune to a busy machine

from gnuradio.isac.cli.train import main  # noqa: E402
from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.trainer.train import PROFILES, Trainer, TrainOptions  # noqa: E402
from gnuradio.isac.transceiver import get, load_weights  # noqa: E402

TINY = [
    "array.antennas=16",
    "ofdm.subcarriers=32",
    "receiver.delay_grid=40",
    "transmitter.beam_grid=180",
    "scene.max_targets=2",
    "array.spacing_std_m=4e-4",
]
SC = Scenario.default().with_overrides(TINY)


def options(**kw):
    base = dict(iterations=4, batch=4, val_every=2, val_frames=8, checkpoint_every=2, curriculum_steps=0)
    base.update(kw)
    return TrainOptions.from_profile("quick", **base)


def test_cli_writes_weights_log_plot_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    args = [
        "--quick",
        "--iterations",
        "4",
        "--batch",
        "4",
        "--val-every",
        "2",
        "--val-frames",
        "8",
        "--curriculum-steps",
        "2",
        "--lr-final",
        "1e-4",
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    ] + [a for s in TINY for a in ("--set", s)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "coherence" in text and "spacing error" in text
    w = load_weights(out, SC, method="impairment")
    assert w.steps == 4 and w.tensors["spacings_m"].shape == (16,)
    assert w.metadata["scenario_hash"] == SC.hash(("array", "ofdm"))
    rows = list(csv.DictReader(open(tmp_path / "w.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["coherence"] and rows[2]["coherence"] and not rows[1]["coherence"]
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "w.ckpt.safetensors").exists()


def test_training_is_deterministic_and_resume_is_exact(tmp_path):
    a = Trainer(SC, options())
    for _ in range(4):
        a.train_step()
    b = Trainer(SC, options())
    for _ in range(2):
        b.train_step()
    b.save_checkpoint(str(tmp_path / "c.safetensors"))
    c = Trainer(SC, options())
    c.load_checkpoint(str(tmp_path / "c.safetensors"))
    assert c.step == 2
    for _ in range(2):
        c.train_step()
    np.testing.assert_array_equal(a.array.u.detach().numpy(), c.array.u.detach().numpy())
    assert not np.array_equal(a.array.u.detach().numpy(), np.ones(16))


def test_checkpoint_refuses_another_scenario_or_method(tmp_path):
    t = Trainer(SC, options())
    t.save_checkpoint(str(tmp_path / "c.safetensors"))
    with pytest.raises(ValueError, match="checkpoint of scenario"):
        Trainer(SC.with_overrides(["array.impairment_seed=5"]), options()).load_checkpoint(
            str(tmp_path / "c.safetensors")
        )
    with pytest.raises(ValueError, match="parameterisation"):
        Trainer(SC, options(parameterisation="position")).load_checkpoint(str(tmp_path / "c.safetensors"))


def test_impairment_learning_raises_the_coherence_and_lowers_the_validation_loss():
    t = Trainer(SC, options(iterations=60, batch=8, lr=5e-3, val_frames=64))
    before = t.validate()
    for _ in range(60):
        t.train_step()
    after = t.validate()
    assert after["coherence"] > before["coherence"] + 0.05
    assert after["val_loss"] < before["val_loss"]


@pytest.mark.parametrize(
    "kw",
    [
        dict(method="dictionary"),
        dict(parameterisation="position"),
        dict(loss="mse", temperature_final=0.05),
        dict(eta_phi="fixed", sector_restricted=False),
    ],
)
def test_variants_run_and_produce_valid_weights(tmp_path, kw):
    from gnuradio.isac.trainer.train import train

    out = str(tmp_path / "w.safetensors")
    summary = train(SC, options(iterations=2, **kw), out, progress=False, log=lambda *_: None)
    w = load_weights(out, SC)
    assert w.method == kw.get("method", "impairment") and summary["steps"] == 2
    if w.method == "dictionary":
        assert w.tensors["dictionary"].shape == (16, 180)
        assert not np.allclose(
            w.tensors["dictionary"], Trainer(SC, options(method="dictionary")).weight_tensors()["dictionary"]
        )


def test_options_are_validated_and_profiles_are_sized():
    with pytest.raises(ValueError, match="method"):
        TrainOptions(method="nnbl")
    with pytest.raises(ValueError, match="batch"):
        TrainOptions(batch=0)
    assert PROFILES["paper"]["batch"] == 1500 and PROFILES["paper"]["iterations"] == 25000
    assert TrainOptions.from_profile("quick").curriculum_steps == PROFILES["quick"]["curriculum_steps"]
    # each method's learning rate per profile is its own
    assert TrainOptions.from_profile("quick", method="dictionary").lr == 5e-3
    assert TrainOptions.from_profile("quick").lr == 2e-3 and TrainOptions().lr == 1e-3
    o = TrainOptions(temperature=1.0, temperature_final=0.01, iterations=3)
    assert [round(o.temperature_at(s), 6) for s in range(3)] == [1.0, 0.1, 0.01]
    o = TrainOptions(lr=1e-2, lr_final=1e-4, iterations=3)
    assert [round(o.lr_at(s), 8) for s in range(3)] == [1e-2, 1e-3, 1e-4]
    o = TrainOptions(curriculum_steps=10, curriculum_start_deg=5.0)
    assert [o.theta_mean_at(s) for s in (0, 5, 10, 50)] == [5.0, 32.5, 60.0, 60.0]
    assert TrainOptions(curriculum_steps=0).theta_mean_at(0) == 60.0
    assert TrainOptions().curriculum_steps == PROFILES["paper"]["curriculum_steps"]


def test_training_sectors_follow_sec_va_and_the_curriculum():
    t = Trainer(SC, options(batch=2))
    b = t.sampler.draw(t.sampler.generator(0), 2000)
    mean, width = np.rad2deg((b.lo + b.hi).numpy() / 2), np.rad2deg((b.hi - b.lo).numpy())
    assert -60 <= mean.min() < -55 and 55 < mean.max() <= 60
    assert 10 <= width.min() < 10.5 and 19.5 < width.max() <= 20
    inside = (b.angles >= b.lo[:, None]) & (b.angles <= b.hi[:, None])
    assert inside.all() and set(b.counts.tolist()) == {1, 2}
    assert torch.equal(b.present, torch.arange(2)[None, :] < b.counts[:, None])
    assert set(np.round(b.eta.numpy() * 7).astype(int).tolist()) == set(range(8))
    small = t.sampler.draw(t.sampler.generator(0), 500, theta_mean_deg=5.0)
    assert np.abs(np.rad2deg((small.lo + small.hi).numpy() / 2)).max() <= 5.0


def test_cli_refuses_bad_device_and_threads(tmp_path, capsys):
    out = str(tmp_path / "w.safetensors")
    if not torch.cuda.is_available():
        assert main(["--quick", "--device", "cuda", "--out", out]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--quick", "--threads", "0", "--out", out])
    with pytest.raises(SystemExit):
        main(["--quick", "--batch", "0", "--out", out])


# --- complexity-limited dictionary learning (Sec. V-C, --dictionary-points) -----------------------
def test_dictionary_parameter_counts_full_and_limited():
    """Paper sizes: K = 64 antennas on the 720-point grid (46,080 complex entries) and the
    complexity-limited N_theta = 156 (9,984)."""
    sc = Scenario.default()
    full = Trainer(sc, TrainOptions(method="dictionary"))
    limited = Trainer(sc, TrainOptions(method="dictionary", dictionary_points=156))
    assert full.parameter_count() == 64 * 720 == 46080
    assert limited.parameter_count() == 64 * 156 == 9984
    assert limited.array.A.dtype == torch.complex64 and limited.array.grid_rad.shape == (156,)
    # the precoder's LS synthesis and dOMP both use the learnable array's grid
    assert limited.domp.array is limited.array and limited.grid_points == 156
    assert Trainer(sc, TrainOptions()).parameter_count() == 64  # impairment: the K spacings


def test_limited_dictionary_weights_record_the_grid_and_evaluate(tmp_path):
    from gnuradio.isac.evaluation import evaluate
    from gnuradio.isac.model.grids import full_angle_grid
    from gnuradio.isac.trainer.train import train

    out = str(tmp_path / "w.safetensors")
    summary = train(
        SC, options(method="dictionary", dictionary_points=40, iterations=2), out, progress=False, log=lambda *_: None
    )
    assert summary["parameters"] == 16 * 40
    w = load_weights(out, SC, method="dictionary")
    assert w.tensors["dictionary"].shape == (16, 40)
    assert json.loads(w.metadata["angle_grid"])["points"] == 40
    assert json.loads(w.metadata["training"])["dictionary_points"] == 40
    np.testing.assert_allclose(w.angle_grid_rad, full_angle_grid(40), atol=1e-15)
    arr = get("dictionary", w).receive_array(SC, w)
    assert arr.dictionary.shape == (16, 40) and arr.steering(np.array([0.3])).shape == (16, 1)
    sc = SC.with_overrides(["run.frames=20", "run.calibration_frames=20", "run.batch=20"])
    res = evaluate(sc, "dictionary", progress=False, weights=w)
    assert res["method"] == "dictionary" and np.isfinite(res["gospa"]) and 0 <= res["p_md"] <= 1


def test_dictionary_points_are_refused_where_they_do_not_apply(tmp_path):
    with pytest.raises(ValueError, match="dictionary_points"):
        TrainOptions(dictionary_points=156)  # impairment learning
    with pytest.raises(ValueError, match=">= 2"):
        TrainOptions(method="dictionary", dictionary_points=1)
    with pytest.raises(SystemExit):
        main(["--quick", "--dictionary-points", "156", "--out", str(tmp_path / "w.safetensors")])
    t = Trainer(SC, options(method="dictionary", dictionary_points=40))
    t.save_checkpoint(str(tmp_path / "c.safetensors"))
    with pytest.raises(ValueError, match="dictionary_points"):
        Trainer(SC, options(method="dictionary")).load_checkpoint(str(tmp_path / "c.safetensors"))


# --- the shared harness and sampler (trainer/harness.py, trainer/sampler.py) ---------------------------
def _nn_options(**kw):
    from gnuradio.isac.trainer.nnbl_train import NnOptions

    base = dict(
        iterations=2,
        batch=8,
        n_theta=16,
        n_tau=16,
        limited=True,
        val_frames=8,
        val_every=1,
        checkpoint_every=1,
        lr_position=1e-2,
        lr_detection=1e-2,
        patience=100,
        profile="quick",
    )
    return NnOptions(**{**base, **kw})


def test_model_based_and_nn_trainers_are_one_harness(tmp_path, monkeypatch):
    """Both trainers subclass Harness and inherit its step, loop and checkpoints unchanged;
    train() and train_nn() both run Harness.run."""
    from gnuradio.isac.trainer import harness
    from gnuradio.isac.trainer.nnbl_train import NnTrainer, train_nn
    from gnuradio.isac.trainer.train import train

    assert issubclass(Trainer, harness.Harness) and issubclass(NnTrainer, harness.Harness)
    for name in ("run", "train_step", "optimise", "save_checkpoint", "load_checkpoint", "load_adam"):
        assert getattr(Trainer, name) is getattr(harness.Harness, name) is getattr(NnTrainer, name), name
    ran = []
    monkeypatch.setattr(harness.Harness, "run", lambda self, *a, **k: ran.append(type(self).__name__) or {})
    train(SC, options(), str(tmp_path / "a.safetensors"))
    train_nn(SC, _nn_options(), str(tmp_path / "b.safetensors"))
    assert ran == ["Trainer", "NnTrainer"]


@pytest.mark.parametrize("step", [0, 5])
def test_sampler_draws_the_same_frames_for_both_trainers(step):
    """On the same seed the model-based and the NN trainer train on the same frames (B <= DRAW_CHUNK,
    NNBL's step 1) and validate on the same set; another seed draws other frames."""
    from gnuradio.isac.trainer.nnbl_train import NnTrainer
    from gnuradio.isac.trainer.sampler import DRAW_CHUNK, FrameSampler

    mb, nn = Trainer(SC, options(batch=8, seed=5)), NnTrainer(SC, _nn_options(batch=8, seed=5, iterations=10))
    assert type(mb.sampler) is type(nn.sampler) is FrameSampler and 8 <= DRAW_CHUNK
    mb.step = nn.step = step
    a, b = mb.training_batch(), nn.training_batch()
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors()))
    nn.validate()
    v = mb.sampler.validation(mb.options.val_frames)
    assert all(torch.equal(x, y) for x, y in zip(v.tensors(), nn._val["position"].tensors()))
    other = Trainer(SC, options(batch=8, seed=6))
    other.step = step
    assert not torch.equal(other.training_batch().angles, a.angles)


class _Stop(Exception):
    pass


def interrupted_then_resumed(run, out, monkeypatch, after: int) -> None:
    """``run(out, resume)`` stopped right after its ``after``-th checkpoint, then resumed from it."""
    from gnuradio.isac.trainer import harness

    real, saved = harness.Harness.save_checkpoint, []

    def save_then_stop(self, path):
        real(self, path)
        saved.append(self.step)
        if len(saved) == after:
            raise _Stop

    with monkeypatch.context() as m:
        m.setattr(harness.Harness, "save_checkpoint", save_then_stop)
        with pytest.raises(_Stop):
            run(out, None)
    run(out, out[: -len(".safetensors")] + ".ckpt.safetensors")


def csv_without_time(path):
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(open(path))]


@pytest.mark.parametrize("kw", [dict(), dict(method="dictionary", dictionary_points=40)])
def test_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path, monkeypatch, kw):
    """Harness.run stopped after its first checkpoint (step 2 of 5, two chunks of frames per step,
    lr and temperature schedules, curriculum) and resumed: the same weights, bit for bit, and the
    same log."""
    from gnuradio.isac.trainer.train import train

    o = options(iterations=5, batch=37, lr_final=1e-4, temperature_final=0.05, curriculum_steps=3, **kw)

    def run(out, resume):
        return train(SC, o, out, resume=resume, progress=False, log=lambda *_: None)

    straight, resumed = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    run(straight, None)
    interrupted_then_resumed(run, resumed, monkeypatch, after=1)
    wa, wb = load_weights(straight, SC), load_weights(resumed, SC)
    assert wa.steps == wb.steps == 5 and set(wa.tensors) == set(wb.tensors)
    for k in wa.tensors:
        np.testing.assert_array_equal(wa.tensors[k], wb.tensors[k], err_msg=k)
    assert csv_without_time(tmp_path / "a.csv") == csv_without_time(tmp_path / "b.csv")


def test_cli_resume_refuses_unusable_files_with_one_line(tmp_path, capsys):
    """--resume with a pickle, a torch.save file, a directory, a damaged or missing checkpoint, a
    weights file or another trainer's checkpoint: exit 2, one line naming the file."""
    import pickle

    sets = [a for s in TINY for a in ("--set", s)]
    base = ["--quick", "--iterations", "2", "--batch", "4", "--val-frames", "8", "--no-progress", "--threads", "1"]
    good = tmp_path / "w.safetensors"
    assert main(base + ["--out", str(good)] + sets) == 0
    ckpt = (tmp_path / "w.ckpt.safetensors").read_bytes()
    files = {"pickle": pickle.dumps({"step": 1}), "damaged": ckpt[: len(ckpt) // 2], "garbage": b"not a checkpoint"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"step": torch.zeros(2)}, tmp_path / "torchsave")  # written here, never loaded
    (tmp_path / "dir.safetensors").mkdir()
    cases = {
        "pickle": "pickle",
        "torchsave": "pickle",
        "damaged": "damaged",
        "garbage": "damaged",
        "dir.safetensors": "directory",
        "missing": "no such",
        "w.safetensors": "not an isac-train checkpoint",
    }
    capsys.readouterr()
    for name, words in cases.items():
        path = str(tmp_path / name)
        assert main(base + ["--out", str(tmp_path / "x.safetensors"), "--resume", path] + sets) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and path in err and words in err, (name, err)
    nn = [
        "--method",
        "nn",
        "--quick",
        "--iterations",
        "1",
        "--batch",
        "4",
        "--map-points",
        "16",
        "16",
        "--no-progress",
        "--out",
        str(tmp_path / "n.safetensors"),
        "--resume",
        str(tmp_path / "w.ckpt.safetensors"),
    ]
    assert main(nn + sets) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model-based trainer" in err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "n.safetensors").exists()


# --- impairment learning of the element models (model/impairments.py) -------------------------------

ELEM = SC.with_overrides(
    [
        "array.gain_std_db=2",
        "array.phase_std_deg=40",
        "array.coupling_taps=2",
        "array.coupling_db=-12",
        "array.dead_elements=2",
    ]
)


def test_without_element_models_the_trainer_is_the_papers_spacing_learning():
    """The models off (the default): a SpacingArray, one Adam group at the run's lr, the log's
    columns and the weights' tensors of before (so existing trainings are unchanged)."""
    from gnuradio.isac.nn import arrays as tm

    t = Trainer(SC, options())
    assert type(t.array) is tm.SpacingArray and t.models == ("spacing",) and t.domp.array is t.array
    assert len(t.optimizer.param_groups) == 1 and "lr_scale" not in t.optimizer.param_groups[0]
    assert t.CSV_FIELDS == Trainer.CSV_FIELDS and "element_error" not in t.validate()
    assert set(t.weight_tensors()) == {"spacings_m", "positions_m", "angle_grid_rad"}


def test_element_models_are_learned_with_their_own_learning_rates(tmp_path):
    from gnuradio.isac.nn import arrays as tm
    from gnuradio.isac.trainer.train import train

    t = Trainer(ELEM, options())
    assert isinstance(t.array, tm.ImpairmentArray) and t.models == ("spacing", "gain", "coupling", "dead")
    assert isinstance(t.domp.array, tm.ReceiverView) and t.domp.array.array is t.array
    groups = {g["group"]: g for g in t.optimizer.param_groups}
    # each parameter its own group, at its model's lr_scale (the gain phase ten times faster)
    assert set(groups) == {"spacing", "gain.log_gain", "gain.phase", "dead.amplitude", "coupling.coupling"}
    scale = {"spacing": 1.0, "gain.log_gain": 1.0, "gain.phase": 10.0, "dead.amplitude": 1.0, "coupling.coupling": 1.0}
    t.before_step()
    for name, g in groups.items():
        assert g["lr"] == pytest.approx(t.options.lr * scale[name]) and g["lr_scale"] == scale[name]
    # a spacing-free scenario learns no spacings
    free = Trainer(ELEM.with_overrides(["array.spacing_std_m=0"]), options())
    assert free.models == ("gain", "coupling", "dead") and free.array.positions is None
    assert "positions.u" not in dict(free.array.named_parameters())
    # training moves every learned parameter and writes every model's tensors
    out = str(tmp_path / "w.safetensors")
    summary = train(ELEM, options(iterations=3), out, progress=False, log=lambda *_: None)
    assert 0 < summary["last"]["element_error"] <= 1.5 and "element_error" in open(tmp_path / "w.csv").readline()
    w = load_weights(out, ELEM, "impairment")
    assert w.array_models == ("spacing", "gain", "coupling", "dead")
    assert w.tensors["coupling"].shape == (2, 2) and w.tensors["gain_db"].shape == (16,)
    for key, start in (("gain_db", 0.0), ("phase_rad", 0.0), ("amplitude", 1.0), ("coupling", 0.0)):
        assert not np.allclose(w.tensors[key], start), key
    learned = get("impairment", w).receive_array(ELEM, w)
    grid = t.array.grid_rad.numpy()
    t2 = Trainer(ELEM, options(iterations=3))
    t2.load_checkpoint(str(tmp_path / "w.ckpt.safetensors"))
    np.testing.assert_allclose(learned.steering(grid), t2.array.dictionary().detach().numpy(), atol=2e-6)


def test_element_model_training_resumes_bit_for_bit(tmp_path, monkeypatch):
    from gnuradio.isac.trainer.train import train

    o = options(iterations=4, batch=6, lr_final=1e-4)

    def run(out, resume):
        return train(ELEM, o, out, resume=resume, progress=False, log=lambda *_: None)

    straight, resumed = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    run(straight, None)
    interrupted_then_resumed(run, resumed, monkeypatch, after=1)
    wa, wb = load_weights(straight, ELEM), load_weights(resumed, ELEM)
    assert set(wa.tensors) == set(wb.tensors) >= {"gain_db", "phase_rad", "amplitude", "coupling"}
    for k in wa.tensors:
        np.testing.assert_array_equal(wa.tensors[k], wb.tensors[k], err_msg=k)
    assert csv_without_time(tmp_path / "a.csv") == csv_without_time(tmp_path / "b.csv")
    # another model set is another scenario: its checkpoint does not resume this one
    with pytest.raises(ValueError, match="checkpoint of scenario"):
        Trainer(SC, o).load_checkpoint(str(tmp_path / "a.ckpt.safetensors"))


def test_cli_trains_the_element_models(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    sets = [a for s in TINY + ["array.phase_std_deg=30", "array.dead_list=[3]"] for a in ("--set", s)]
    assert (
        main(
            [
                "--quick",
                "--iterations",
                "2",
                "--batch",
                "4",
                "--val-frames",
                "8",
                "--out",
                str(out),
                "--no-progress",
                "--threads",
                "1",
            ]
            + sets
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "element error" in text and "gain, dead" in text
    w = load_weights(out, SC.with_overrides(["array.phase_std_deg=30", "array.dead_list=[3]"]))
    assert w.array_models == ("spacing", "gain", "dead") and "coupling" not in w.tensors
