"""Moving targets in the stream: frames of M OFDM symbols through the blocks, isac-sim, SigMF
recordings, ZeroMQ and the pictures, against the offline model on the same frames.

- isac-sim's flowgraph (flowgraph.SimFlowgraph) on a small moving scenario of M symbols gives
  evaluation.evaluate's metrics (baseline, perfect, impairment with oracle weights) and the
  offline receiver's detections, speeds included; dOMP and NNBL are refused through the blocks;
- the ULA channel block's fixed targets move with ``fixed_speeds_mps``."""

import numpy as np
import pytest
from gnuradio import isac

from gnuradio.isac import transceiver
from gnuradio.isac.blocks.base import BlockParameterError
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import calibrate, evaluate, sense
from gnuradio.isac.flowgraph import SimFlowgraph
from gnuradio.isac.model.array import positions_example1
from gnuradio.isac.model.grids import full_angle_grid
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.simulation import Simulator
from gnuradio.isac.transceiver import load_weights, save_weights

N = 8  # frames streamed
M = 8  # OFDM symbols per frame


def moving_scenario(overrides: dict | None = None) -> Scenario:
    """A small scenario of M symbols with targets at -30 .. 30 m/s (K = 16, S = 64, coarse grids)."""
    return Scenario.default().with_overrides(
        {
            "array.antennas": 16,
            "ofdm.subcarriers": 64,
            "ofdm.symbols": M,
            "scene.speed_mps": [-30.0, 30.0],
            "scene.max_targets": 3,
            "receiver.angle_grid": 60,
            "receiver.delay_grid": 50,
            "run.seed": 11,
            "run.frames": N,
            "run.calibration_frames": 48,
            "transmitter.eta": 0.8,
            **(overrides or {}),
        }
    )


@pytest.fixture(scope="module")
def sc():
    return moving_scenario()


@pytest.fixture(scope="module")
def oracle(sc, tmp_path_factory):
    """Impairment-learning weights holding the scenario's true spacings (an oracle learner)."""
    d = true_array(sc).spacings_m
    path = tmp_path_factory.mktemp("w") / "oracle.safetensors"
    tensors = {"angle_grid_rad": full_angle_grid(720), "spacings_m": d, "positions_m": positions_example1(d)}
    save_weights(str(path), sc, "impairment", tensors, steps=0)
    return load_weights(str(path), sc, "impairment")


def stream(sc, threshold, **kw):
    """Run isac-sim's flowgraph on the first N test frames; (flowgraph, {frame: (truth, detections, errors)})."""
    seen = {}
    tb = SimFlowgraph(sc, N, threshold, on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d, e)), **kw)
    tb.run()
    return tb, seen


@pytest.mark.parametrize("method, kernel", [("baseline", "cpp"), ("perfect", "numpy"), ("impairment", "cpp")])
def test_streamed_m_symbol_frames_equal_the_offline_evaluation(sc, oracle, method, kernel):
    """The metrics of the stream are evaluate's on the same frames and threshold (p_md, p_fa
    exact; GOSPA, SER, RMSEs to rounding), and every frame's detections, speeds included, are
    the offline receiver's."""
    weights = oracle if method == "impairment" else None
    t = transceiver.build(sc, method, weights, "omp", kernel)
    threshold = calibrate(sc, Simulator(sc, precoder=t.precoder(sc)), t.receiver, progress=False)
    tb, seen = stream(sc, threshold, method=method, weights=weights, kernel=kernel)
    assert tb.receiver.kernel == kernel and tb.receiver.sensor.dictionaries.doppler

    want = evaluate(sc, method, weights, "omp", kernel, threshold=threshold, progress=False)
    got = tb.summary()
    assert got["frames"] == want["frames"] == N
    assert got["p_md"] == want["p_md"] and got["p_fa"] == want["p_fa"]
    for key in ("gospa", "ser", "angle_rmse_deg", "range_rmse_m", "speed_rmse_mps"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    assert np.isfinite(got["speed_rmse_mps"])  # targets were detected and their speeds scored

    frames = Simulator(sc, precoder=t.precoder(sc)).frames(0, N)
    result = sense(frames, t.receiver)
    assert sorted(seen) == list(range(N))
    detected = 0
    for i in range(N):
        truth, det, _ = seen[i]
        np.testing.assert_array_equal(truth.speed_mps, frames.scenes[i].speeds_mps)
        off = result.detections(i, threshold)
        assert det.count == len(off["angle_rad"]) and det.valid
        np.testing.assert_array_equal(det.speed_mps, off["speed_mps"])  # grid speeds: exactly
        np.testing.assert_allclose(det.angle_deg, np.rad2deg(off["angle_rad"]), rtol=0, atol=1e-9)
        np.testing.assert_allclose(det.range_m, off["range_m"], rtol=0, atol=1e-9)
        detected += det.count
    assert detected > 0 and np.all(np.abs(np.concatenate([seen[i][1].speed_mps for i in range(N)])) <= 30.0)


def test_domp_and_nnbl_on_m_symbols_are_refused_by_the_blocks(sc, tmp_path):
    with pytest.raises(BlockParameterError) as err:
        SimFlowgraph(sc, 1, 1e3, receiver="domp")
    msg = str(err.value)
    assert msg.startswith("isac_omp_receiver: parameter 'receiver'") and "\n" not in msg
    assert f"receiver 'domp' runs on frames of one OFDM symbol, not ofdm.symbols = {M}: use receiver 'omp'" in msg
    w = nnbl_weights(sc, tmp_path / "nn.safetensors")
    for make in (
        lambda: SimFlowgraph(sc, 1, 0.5, method="nn", weights=w),
        lambda: isac.omp_receiver(sc, 0.5, weights=w),
    ):
        with pytest.raises(BlockParameterError) as err:
            make()
        msg = str(err.value)
        assert msg.startswith("isac_omp_receiver: parameter 'method' 'nn': the NNBL") and "\n" not in msg, msg
        assert f"the NNBL networks (Appendix A) take frames of one OFDM symbol, not ofdm.symbols = {M}" in msg


def nnbl_weights(sc, path):
    """NNBL weights for ``sc``: networks after one Adam step on its one-symbol twin (the networks do
    not depend on M; the plumbing of the refusal is under test, not the networks)."""
    import torch

    from gnuradio.isac.trainer.nnbl_train import NnOptions, NnTrainer

    torch.manual_seed(0)
    opts = NnOptions(
        iterations=1, batch=4, n_theta=16, n_tau=16, limited=True, val_frames=4, val_every=1, profile="quick"
    )
    tr = NnTrainer(sc.with_overrides({"ofdm.symbols": 1}), opts)
    tr.train_step()
    save_weights(
        str(path), sc, "nn", tr.weight_tensors(), tr.step, tr.options.to_dict(), metadata={"nnbl": tr.cfg.to_dict()}
    )
    return load_weights(str(path), sc, "nn")
