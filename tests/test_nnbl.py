"""NNBL (Appendix A): networks, parameter counts, two-step training, weights, evaluation "nn"."""

import json

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

from gnuradio.isac import weights as W  # noqa: E402
from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.nn.networks import Nnbl, NnblConfig, PrecoderNet, expected_shapes, load_tensors, parameter_counts  # noqa: E402
from gnuradio.isac.trainer.nnbl_train import NnOptions, NnTrainer, bce_gospa  # noqa: E402
from gnuradio.isac.transceiver import get, load_weights, save_weights
from gnuradio.isac.transceiver.nn import nnbl_config


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions: one torch thread is ~50x faster than contended threads on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kw):
    base = {
        "array.antennas": 8,
        "ofdm.subcarriers": 32,
        "scene.max_targets": 2,
        "run.frames": 16,
        "run.calibration_frames": 16,
        "run.batch": 8,
        "transmitter.eta": 1.0,
        "run.seed": 3,
    }
    base.update(kw)
    return Scenario.default().with_overrides(base)


@pytest.fixture(scope="module")
def sc():
    return tiny()


def options(**kw):
    base = dict(
        iterations=2,
        batch=8,
        n_theta=16,
        n_tau=16,
        limited=True,
        val_frames=8,
        val_every=1,
        lr_position=1e-2,
        lr_detection=1e-2,
        patience=100,
        profile="quick",
    )
    base.update(kw)
    return NnOptions(**base)


# --- networks -------------------------------------------------------------------------------------
def test_shapes_and_output_ranges(sc):
    cfg = NnblConfig(antennas=8, max_targets=2, n_theta=64, n_tau=32)
    net = Nnbl.for_scenario(sc, cfg).eval()
    B = 3
    y = torch.randn(B, 8, 32, dtype=torch.complex64)
    lo = torch.full((B,), -0.7, dtype=torch.float64)
    hi = torch.full((B,), -0.35, dtype=torch.float64)
    x = net.input_map(y, lo, hi)
    assert x.shape == (B, 1, 64, 32) and x.dtype == torch.float32 and bool((x >= 0).all())
    with torch.no_grad():
        out = net.sense(y, lo, hi)
    for t in (out.angles_rad, out.ranges_m, out.probabilities):
        assert t.shape == (B, 2)
    assert bool((out.angles_rad.abs() <= np.pi / 2).all()) and bool((out.ranges_m >= 0).all())
    assert bool(((out.probabilities > 0) & (out.probabilities < 1)).all())
    assert cfg.feature_shape == (1, 1)  # 64 x 32 / 2^6 per axis (ceil)
    assert NnblConfig(n_theta=320, n_tau=128).feature_shape == (5, 2)  # N_theta N_tau / 2^12 = 10


def test_precoder_is_unit_norm(sc):
    net = PrecoderNet(8, 16)
    lo, hi = torch.tensor([-0.5, 0.1, 0.3]), torch.tensor([-0.2, 0.4, 0.6])
    f = net(lo, hi)
    assert f.shape == (3, 8) and f.is_complex()
    np.testing.assert_allclose(torch.linalg.vector_norm(f, dim=-1).detach().numpy(), 1.0, atol=1e-12)
    full = Nnbl.for_scenario(sc, NnblConfig(8, 2, 16, 16, True))
    g = full.precoders(lo, hi, 0.5, 0.8, torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 2.0]), power=2.0)
    np.testing.assert_allclose(torch.linalg.vector_norm(g, dim=-1).detach().numpy(), np.sqrt(2.0), rtol=1e-12)


def _hand_count(K, T, n_theta, n_tau, limited):
    """Parameter count written out from Tables I-II and the Fig. 10 reading of trainer/nnbl.py."""
    h = 4 if limited else 8 * K
    precoder = (2 * h + h) + 2 * (h * h + h) + (h * 2 * K + 2 * K)
    c0, blocks = (
        (2, [(2, 4, 1), (4, 8, 2), (8, 16, 2)])
        if limited
        else (8, [(8, 16, 1), (16, 32, 2), (32, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)])
    )
    pool = 4 if limited else 2
    cnn = 25 * c0 + c0 + 2 * c0  # conv 5x5 + BN
    rows, cols = n_theta // pool, n_tau // pool
    for cin, cout, s in blocks:
        m = max(cout // 4, 1)
        bottleneck = (cout * m + m) + 2 * m + (9 * m * m + m) + (m * cout + cout)
        cnn += 9 * cin * cout + cout + 2 * bottleneck
        rows, cols = (rows - 1) // s + 1, (cols - 1) // s + 1
    cnn += 9 * blocks[-1][1] + 1 + 2  # conv 3x3 -> 1 + BN
    h1 = 4 if limited else 4 * K
    mlp = lambda a: (rows * cols + a) * h1 + h1 + h1 * h1 + h1 + h1 * T + T  # noqa: E731
    return {"precoder": precoder, "angle": cnn + mlp(2), "range": cnn + mlp(2), "detection": cnn + mlp(4)}


@pytest.mark.parametrize("limited", [False, True])
def test_parameter_counts_match_hand_computation(sc, limited):
    cfg = NnblConfig(antennas=4, max_targets=2, n_theta=64, n_tau=64, limited=limited)
    counts = parameter_counts(Nnbl.for_scenario(sc, cfg))
    hand = _hand_count(4, 2, 64, 64, limited)
    assert {k: counts[k] for k in hand} == hand
    # the same numbers, written out once: K = 4, T = 2, 64 x 64
    assert counts["total"] == (6_978_359 if not limited else 8_125)  # limited: 92 + 2 x 2675 + 2683


def test_paper_configuration_counts():
    """Paper: 7.78 M (full), 10,555 (limited). Ours: 7,778,984 and 10,498 (docs/trainer.md)."""
    sc = Scenario.default()
    full = parameter_counts(Nnbl.for_scenario(sc, NnblConfig()))
    limited = parameter_counts(Nnbl.for_scenario(sc, NnblConfig(limited=True)))
    print(f"NNBL paper configuration: full {full}, limited {limited}")
    assert full == _hand_count(64, 5, 320, 128, False) | {"total": 7_778_984}
    assert limited["total"] == 10_498 and abs(limited["total"] - 10_555) / 10_555 < 0.01
    assert round(full["total"] / 1e6, 2) == 7.78


# --- losses and training ----------------------------------------------------------------------------
def test_bce_gospa_is_the_assignment_of_19():
    counts = torch.tensor([1, 2, 0])
    logits = torch.tensor([[-3.0, 4.0, -2.0], [5.0, -1.0, 3.0], [0.0, -6.0, -6.0]], requires_grad=True)
    d = bce_gospa(counts, logits, gamma_u=10.0, p=2.0)

    def bce(u, z):
        return float(torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(u)))

    # frame 0: the one label takes the largest u^ (slot 1), the zeros slots 0 and 2
    want0 = np.sqrt(bce(1.0, 4.0) ** 2 + bce(0.0, -3.0) ** 2 + bce(0.0, -2.0) ** 2)
    want1 = np.sqrt(bce(1.0, 5.0) ** 2 + bce(1.0, 3.0) ** 2 + bce(0.0, -1.0) ** 2)
    want2 = np.sqrt(bce(0.0, 0.0) ** 2 + 2 * bce(0.0, -6.0) ** 2)
    np.testing.assert_allclose(d.detach().numpy(), [want0, want1, want2], rtol=1e-5)
    d.sum().backward()
    assert torch.isfinite(logits.grad).all()
    clipped = bce_gospa(torch.tensor([1]), torch.tensor([[-50.0]]), gamma_u=10.0)
    np.testing.assert_allclose(float(clipped), 10.0, rtol=1e-6)


def test_two_step_training_overfits_a_fixed_batch(sc):
    torch.manual_seed(0)
    tr = NnTrainer(sc, options(iterations=25, lr_position=3e-2, lr_detection=3e-2))
    batch = tr.sampler.draw_frames(0)
    with torch.no_grad():
        tr.net.eval()
        before = float(tr.loss(batch, "position").mean())
    losses = [tr.train_step(batch) for _ in range(25)]
    with torch.no_grad():
        tr.net.eval()
        after = float(tr.loss(batch, "position").mean())
    assert after < 0.8 * before, (before, after, losses)
    angle0 = {k: v.clone() for k, v in tr.net.angle.state_dict().items()}
    det = [tr.train_step(batch) for _ in range(25)]
    assert tr.phase == "detection"
    assert np.mean(det[-5:]) < 0.8 * det[0], det
    for k, v in tr.net.angle.state_dict().items():  # f_xi frozen in step 2 (BN statistics too)
        assert torch.equal(v, angle0[k]), k


def test_detection_step_sees_target_free_frames(sc, monkeypatch):
    """Step 1 draws T ~ U{1..T_max} (a frame without targets has no GOSPA (18)); step 2 draws
    T ~ U{0..T_max}, as the test scenes: with T_max = 1 and no empty frame the detector would
    only ever see the label 1. The validation sets follow the same rule per step."""
    single = tiny(**{"scene.max_targets": 1})
    tr = NnTrainer(single, options(iterations=1, batch=64, val_frames=64))
    seen = []
    real_draw = tr.sampler.draw

    def spy(gen, batch, theta_mean_deg=None, min_targets=1):
        b = real_draw(gen, batch, theta_mean_deg, min_targets)
        seen.append((tr.phase, b.counts.clone()))
        return b

    monkeypatch.setattr(tr.sampler, "draw", spy)
    tr.train_step()
    tr.train_step()
    (p1, c1), (p2, c2) = seen
    assert p1 == "position" and bool((c1 == 1).all())
    assert p2 == "detection" and 10 < int((c2 == 0).sum()) < 54 and int((c2 == 1).sum()) > 10
    tr.validate()
    assert bool((tr._val["position"].counts >= 1).all()) and bool((tr._val["detection"].counts == 0).any())


def test_plateau_scheduler_sees_window_means_not_single_batches(sc, tmp_path, monkeypatch):
    """ReduceLROnPlateau is fed the mean training loss of each plateau_window steps, patience
    in steps: noisy losses around a falling mean keep the lr; a flat mean halves it once per
    patience; the partial window survives a checkpoint."""
    noise = np.random.default_rng(5).normal(0.0, 10.0, 100)  # batch-to-batch spread of small batches

    def run(trend, **kw):
        tr = NnTrainer(sc, options(iterations=100, **kw))
        values = iter(list(trend + noise))

        def fake_loss(batch, phase=None):  # the real graph, the loss value scripted
            out = tr.net.precoder(torch.zeros(1), torch.ones(1)).abs().sum() * 0.0
            return (out + next(values)).reshape(1)

        monkeypatch.setattr(tr, "loss", fake_loss)
        monkeypatch.setattr(tr.sampler, "draw_frames", lambda *a, **k: None)
        lrs = []
        for _ in range(100):
            tr.train_step()
            lrs.append(tr.optimizer.param_groups[0]["lr"])
        return tr, lrs

    falling = np.linspace(100.0, 50.0, 100)
    # per step (window 1) the noise alone decays the lr: the luckiest batch so far is rarely beaten
    _, per_step = run(falling, plateau_window=1, patience=2)
    assert per_step[-1] <= 1e-2 / 8
    # windows of 10: the window means fall, the lr stays
    _, windowed = run(falling, plateau_window=10, patience=20)
    assert windowed[-1] == 1e-2
    # a flat mean: halved after patience (20 steps = 2 windows) without improvement, then again
    noise[:] = 0.0
    tr, flat = run(np.full(100, 80.0), plateau_window=10, patience=20)
    assert flat[29] == 1e-2 and flat[39] == 5e-3 and flat[-1] < 5e-3
    # the partial window is part of the checkpoint
    tr.window_losses = [1.0, 2.0, 3.5]
    ckpt = str(tmp_path / "w.ckpt.safetensors")
    tr.save_checkpoint(ckpt)
    other = NnTrainer(sc, options(iterations=100, plateau_window=10, patience=20))
    other.load_checkpoint(ckpt)
    assert other.window_losses == [1.0, 2.0, 3.5]
    with pytest.raises(ValueError, match="plateau_window"):
        NnTrainer(sc, options(iterations=100, plateau_window=5, patience=20)).load_checkpoint(ckpt)


@pytest.mark.parametrize("stop", [1, 3])  # resume in step 1 (crossing into step 2) and in step 2
def test_resume_reaches_the_uninterrupted_weights(sc, tmp_path, stop):
    def fresh():
        torch.manual_seed(0)
        return NnTrainer(sc, options(iterations=2, batch=4))

    straight = fresh()
    for _ in range(4):
        straight.train_step()
    first = fresh()
    for _ in range(stop):
        first.train_step()
    ckpt = str(tmp_path / "c.ckpt.safetensors")
    first.save_checkpoint(ckpt)
    torch.manual_seed(123)  # a different initialisation: everything must come from the checkpoint
    resumed = NnTrainer(sc, options(iterations=2, batch=4))
    resumed.load_checkpoint(ckpt)
    assert resumed.step == stop and resumed.phase == first.phase
    while resumed.step < 4:
        resumed.train_step()
    a, b = straight.weight_tensors(), resumed.weight_tensors()
    for k in a:  # bit for bit: the same batches, the state of the checkpoint
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    other = NnTrainer(sc, options(iterations=2, batch=4, limited=False))
    with pytest.raises(ValueError, match="limited"):
        other.load_checkpoint(ckpt)


def test_train_nn_resumed_after_an_interruption_equals_the_uninterrupted_run(sc, tmp_path, monkeypatch):
    """Harness.run of NNBL stopped after its checkpoint of step 2 (step 1 of 2 x 3 steps, partial
    plateau window) and resumed: the weights and the log of the uninterrupted run, bit for bit."""
    from test_trainer_train import csv_without_time, interrupted_then_resumed

    from gnuradio.isac.trainer.nnbl_train import train_nn

    o = options(iterations=3, batch=4, checkpoint_every=2, val_every=2, plateau_window=2, patience=2)

    def run(out, resume):
        return train_nn(sc, o, out, resume=resume, progress=False, log=lambda *_: None)

    straight, resumed = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    run(straight, None)
    interrupted_then_resumed(run, resumed, monkeypatch, after=1)
    wa, wb = load_weights(straight, sc, "nn"), load_weights(resumed, sc, "nn")
    assert wa.steps == wb.steps == 6
    for k in wa.tensors:
        np.testing.assert_array_equal(wa.tensors[k], wb.tensors[k], err_msg=k)
    assert csv_without_time(tmp_path / "a.csv") == csv_without_time(tmp_path / "b.csv")


# --- the torch-free tensor schema (gnuradio.isac.nn.schema) ------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [NnblConfig(), NnblConfig(limited=True), NnblConfig(3, 4, 37, 23), NnblConfig(5, 1, 19, 13, True)],
    ids=["full", "limited", "odd", "odd-limited"],
)
def test_schema_shapes_are_the_torch_networks_state(cfg):
    """nn_schema.expected_shapes, computed from the layer sizes, names exactly the state tensors of
    the torch networks (BN batch counters excluded) with their shapes: the paper's full and
    limited configurations and odd sizes (odd maps: floor in the maxpool, ceil in the strides)."""
    from gnuradio.isac.nn import schema as nn_schema

    assert NnblConfig is nn_schema.NnblConfig
    net = Nnbl(cfg, wavelength_m=0.01, subcarriers=8, spacing_hz=1e5, range_m=(10.0, 50.0))
    state = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert nn_schema.expected_shapes(cfg) == state
    assert sum(int(np.prod(s)) for k, s in state.items() if "running_" not in k) == parameter_counts(net)["total"]


def test_schema_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, gnuradio.isac.nn.schema as s; s.expected_shapes(s.NnblConfig(limited=True)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# --- weights ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(sc, tmp_path_factory):
    tr = NnTrainer(sc, options(iterations=1))
    tr.train_step()
    tr.train_step()
    path = str(tmp_path_factory.mktemp("nn") / "nn.safetensors")
    save_weights(
        path, sc, "nn", tr.weight_tensors(), tr.step, tr.options.to_dict(), metadata={"nnbl": tr.cfg.to_dict()}
    )
    return path, tr


def test_weights_round_trip(sc, trained):
    path, tr = trained
    w = load_weights(path, sc, "nn")
    assert json.loads(w.metadata["nnbl"]) == {
        "antennas": 8,
        "max_targets": 2,
        "n_theta": 16,
        "n_tau": 16,
        "limited": True,
    }
    assert {k: v.shape for k, v in w.tensors.items()} == expected_shapes(tr.cfg)
    net = Nnbl.for_scenario(sc, nnbl_config(w))
    load_tensors(net, w.tensors)
    tr.net.eval()
    net.eval()
    y = torch.randn(2, 8, 32, dtype=torch.complex64)
    lo, hi = torch.tensor([-0.6, 0.1], dtype=torch.float64), torch.tensor([-0.3, 0.4], dtype=torch.float64)
    with torch.no_grad():
        a, b = tr.net.sense(y, lo, hi), net.sense(y, lo, hi)
    for x, z in ((a.angles_rad, b.angles_rad), (a.ranges_m, b.ranges_m), (a.logits, b.logits)):
        np.testing.assert_allclose(x.numpy(), z.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(NotImplementedError, match="method 'nn' has no array"):
        get("nn", w).receive_array(sc, w)


def test_weights_refusals(sc, trained, tmp_path):
    path, tr = trained
    good = tr.weight_tensors()
    meta = tr.cfg.to_dict()

    def save(tensors, nnbl=meta, scenario=sc):
        return save_weights(str(tmp_path / "w.safetensors"), scenario, "nn", tensors, 0, metadata={"nnbl": nnbl})

    bad = dict(good)
    bad["angle.mlp.4.weight"] = np.zeros((3, 4), np.float32)
    with pytest.raises(W.WeightsError, match=r"'angle.mlp.4.weight' has shape \(3, 4\), expected \(2, 4\)"):
        save(bad)
    missing = {k: v for k, v in good.items() if k != "precoder.net.0.bias"}
    with pytest.raises(W.WeightsError, match="'precoder.net.0.bias' is missing"):
        save(missing)
    with pytest.raises(W.WeightsError, match="unexpected tensor 'extra'"):
        save({**good, "extra": np.zeros(2, np.float32)})
    nan = dict(good)
    nan["range.mlp.0.bias"] = np.full_like(good["range.mlp.0.bias"], np.nan)
    with pytest.raises(W.WeightsError, match="NaN"):
        save(nan)
    with pytest.raises(W.WeightsError, match="needs the NNBL configuration"):
        save(good, nnbl=None)
    with pytest.raises(W.WeightsError, match="T_max = 2"):
        load_weights(path, tiny(**{"scene.max_targets": 3}), "nn")
    with pytest.raises(W.WeightsError, match="expected 'impairment'"):
        load_weights(path, sc, "impairment")
    with pytest.raises(W.WeightsError, match="malformed NNBL metadata"):
        save(good, nnbl={**meta, "bogus": 1})


def test_cli_trains_nn_and_refuses_unused_options(tmp_path, capsys):
    from gnuradio.isac.cli import train as isac_train

    out = str(tmp_path / "nn.safetensors")
    sets = ["--set", "array.antennas=8", "--set", "ofdm.subcarriers=32", "--set", "scene.max_targets=2"]
    rc = isac_train.main(
        [
            "--method",
            "nn",
            "--limited",
            "--quick",
            "--iterations",
            "2",
            "--batch",
            "4",
            "--val-every",
            "1",
            "--val-frames",
            "4",
            "--map-points",
            "16",
            "16",
            "--out",
            out,
            "--no-progress",
            *sets,
        ]
    )
    assert rc == 0
    assert "NNBL (limited" in capsys.readouterr().out
    w = load_weights(out, tiny(), "nn")
    assert nnbl_config(w) == NnblConfig(8, 2, 16, 16, True) and w.steps == 4
    assert (tmp_path / "nn.csv").read_text().count("\n") == 6  # header + step 0 + 4 steps
    assert (tmp_path / "nn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in (["--method", "nn", "--loss", "mse"], ["--method", "impairment", "--limited"]):
        with pytest.raises(SystemExit):
            isac_train.main([*bad, "--out", out, *sets])


# --- evaluation -------------------------------------------------------------------------------------
def test_receiver_peaks_are_sorted_probabilities(sc, trained):
    from gnuradio.isac import transceiver
    from gnuradio.isac.transceiver.nn import NnSensingReceiver

    path, _ = trained
    t = transceiver.build(sc, "nn", load_weights(path, sc, "nn"))
    f, rx = t.precoder(sc), t.receiver
    assert f.shape == (8,) and f.dtype == np.complex64
    np.testing.assert_allclose(np.linalg.norm(f), np.sqrt(sc.transmitter["power"]), rtol=1e-5)
    assert isinstance(rx, NnSensingReceiver)
    y = (np.random.default_rng(0).standard_normal((4, 8, 32)) + 0j).astype(np.complex64)
    res = rx(y)
    assert res.peaks.shape == (4, 2) and np.all(np.diff(res.peaks, axis=1) <= 0)
    with torch.no_grad():
        lo = torch.full((4,), sc.target_sector_rad[0], dtype=torch.float64)
        hi = torch.full((4,), sc.target_sector_rad[1], dtype=torch.float64)
        u = rx.net.sense(torch.as_tensor(y), lo, hi).probabilities.numpy()
    for delta in (0.0, float(np.median(u)), 1.0):
        np.testing.assert_array_equal(res.counts(delta), (u > delta).sum(axis=1))


def test_evaluate_nn_end_to_end(sc, trained):
    from gnuradio.isac.evaluation import evaluate

    path, _ = trained
    out = evaluate(sc, "nn", progress=False, weights=load_weights(path, sc, "nn"))
    assert out["method"] == "nn" and out["receiver"] == "nn" and out["frames"] == 16
    for key in ("p_md", "p_fa", "ser"):
        assert 0.0 <= out[key] <= 1.0
    assert np.isfinite(out["gospa"]) and 0.0 <= out["threshold"] <= 1.0
    with pytest.raises(ValueError, match="needs a weights file"):
        evaluate(sc, "nn", progress=False)
    with pytest.raises(W.WeightsError, match="expected 'impairment'"):  # nn weights for another method
        evaluate(sc, "impairment", progress=False, weights=load_weights(path, sc))
