"""isac-sim's streaming flowgraph: streamed results equal the offline model on the same seeds,
and results published over ZeroMQ (JSON and PMT) on 127.0.0.1 reach a subscriber."""

import json
import socket
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from gnuradio.isac import flowgraph, transceiver
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.cli import subscribe as isac_subscribe
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import sense
from gnuradio.isac.flowgraph import SimFlowgraph
from gnuradio.isac.model.ofdm import ml_detect
from gnuradio.isac.scoring import Scores
from gnuradio.isac.simulation import Simulator
from gnuradio.isac.transceiver import load_weights, save_weights

N = 10
THRESHOLD = 2.0e4


def small_stream_scenario(overrides: dict | None = None) -> Scenario:
    """The small scenario of the streaming tests (K = 16, S = 64, coarse grids), plus ``overrides``."""
    return Scenario.default().with_overrides(
        {
            "array.antennas": 16,
            "ofdm.subcarriers": 64,
            "receiver.angle_grid": 90,
            "receiver.delay_grid": 50,
            "run.seed": 5,
            "run.calibration_frames": 40,
            "transmitter.eta": 0.7,
            **(overrides or {}),
        }
    )


@pytest.fixture(scope="module")
def sc():
    return small_stream_scenario()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_collect(sc, **kw):
    seen = {}

    def on_frame(frame, truth, det, errors):
        seen[frame] = (truth, det, errors)

    tb = SimFlowgraph(sc, N, THRESHOLD, on_frame=on_frame, **kw)
    tb.run()
    return tb, seen


def check_streamed_equals_offline(sc, tb, seen, t, kernel, threshold=THRESHOLD):
    """Every frame's truth, detections and symbol errors of the flowgraph equal the offline
    transceiver ``t`` (built by transceiver.build) on the same frames; so do the running metrics."""
    frames = Simulator(sc, precoder=t.precoder(sc)).frames(0, N)
    result = sense(frames, t.receiver)
    detected = ml_detect(frames.y_comm, frames.csi)
    assert sorted(seen) == list(range(N))
    for i in range(N):
        truth, det, errors = seen[i]
        want = result.detections(i, threshold)
        assert truth.count == frames.scenes[i].count
        np.testing.assert_allclose(truth.angle_deg, np.rad2deg(frames.scenes[i].angles_rad))
        assert det.count == len(want["angle_rad"])
        tol = 1e-9 if kernel == "numpy" else 1e-4  # C++ kernels or float32 networks: single precision
        np.testing.assert_allclose(det.angle_deg, np.rad2deg(want["angle_rad"]), atol=tol)
        np.testing.assert_allclose(det.range_m, want["range_m"], atol=tol * 100)
        assert errors == int(np.count_nonzero(detected[i] != frames.messages[i]))
    ref = Scores.for_scenario(sc)
    ref.add(frames, result, threshold, detected)
    got, want = tb.summary(), ref.summary()
    for key in ("p_md", "p_fa", "ser", "gospa"):
        assert got[key] == pytest.approx(want[key], rel=1e-5, nan_ok=True), key


@pytest.mark.parametrize(
    "method, kernel, receiver",
    [
        ("baseline", "cpp", "omp"),
        ("perfect", "numpy", "omp"),
        ("baseline", "numpy", "omp"),
        ("perfect", "cpp", "domp"),
        ("baseline", "numpy", "domp"),
    ],
)
def test_streamed_results_equal_offline_model(sc, method, kernel, receiver):
    tb, seen = run_collect(sc, method=method, kernel=kernel, receiver=receiver)
    check_streamed_equals_offline(sc, tb, seen, transceiver.build(sc, method, None, receiver, "numpy"), kernel)


def test_streamed_results_equal_offline_model_on_two_threads(sc):
    """threads = 2: the channel and filter split their frames, the receiver pipelines chunks of
    frames on two workers: the same frames and detections as the offline model."""
    tb, seen = run_collect(sc, method="baseline", kernel="cpp", receiver="omp", threads=2)
    check_streamed_equals_offline(sc, tb, seen, transceiver.build(sc, "baseline", None, "omp", "numpy"), "cpp")


def test_the_gil_switch_interval_is_short_while_the_flowgraph_runs_and_restored_after(sc):
    before = sys.getswitchinterval()
    during = []
    tb = SimFlowgraph(sc, 4, THRESHOLD, on_frame=lambda *a: during.append(sys.getswitchinterval()))
    tb.run()
    assert len(during) == 4 and max(during) <= flowgraph.GIL_SWITCH_INTERVAL_S < before
    assert sys.getswitchinterval() == before


@pytest.fixture(scope="module")
def nn_weights(sc, tmp_path_factory):
    """A tiny NNBL weights file of ``sc`` (two Adam steps of the limited networks): the plumbing of
    deployment is under test here, not the quality of the networks."""
    import torch

    from gnuradio.isac.trainer.nnbl_train import NnOptions, NnTrainer

    torch.manual_seed(0)
    opts = NnOptions(
        iterations=1,
        batch=4,
        n_theta=16,
        n_tau=16,
        limited=True,
        val_frames=4,
        val_every=1,
        lr_position=1e-2,
        lr_detection=1e-2,
        patience=100,
        profile="quick",
    )
    tr = NnTrainer(sc, opts)
    tr.train_step()
    path = str(tmp_path_factory.mktemp("nn") / "nn.safetensors")
    save_weights(
        path, sc, "nn", tr.weight_tensors(), tr.step, tr.options.to_dict(), metadata={"nnbl": tr.cfg.to_dict()}
    )
    return load_weights(path, sc, "nn")


def test_streamed_nnbl_equals_offline(sc, nn_weights):
    """NNBL in the stream (issue 9): the precoder and receiver blocks run the networks of an
    isac-train --method nn file; detections, SER and metrics equal the offline transceiver."""
    threshold = 0.5  # NNBL peaks are detection probabilities
    seen = {}
    tb = SimFlowgraph(
        sc,
        N,
        threshold,
        method="nn",
        weights=nn_weights,
        kernel="numpy",
        on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d, e)),
    )
    tb.run()
    t = transceiver.build(sc, "nn", nn_weights)
    assert tb.receiver.receiver == "nn" and t.receiver_name == "nn"
    np.testing.assert_array_equal(tb.precoder.precoder(), t.precoder(sc))
    # the networks compute in float32 and the stream batches frames differently from the offline
    # call (BLAS blocking): single-precision agreement, as for the C++ kernels
    check_streamed_equals_offline(sc, tb, seen, t, "float32", threshold)


def test_isac_sim_runs_nnbl_weights(sc, nn_weights, tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    code = isac_sim.main(
        ["--config", str(cfg), "--frames", "2", "--no-progress", "--no-compare", "--weights", nn_weights.source]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "method nn, receiver nn" in out and "over 2 frames: p_md = " in out


def test_isac_sim_prints_frames_and_metrics_and_saves_the_map(sc, tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    png = tmp_path / "map.png"
    code = isac_sim.main(
        [
            "--config",
            str(cfg),
            "--frames",
            "3",
            "--no-progress",
            "--map-png",
            str(png),
            "--map-frame",
            "1",
            "--receiver",
            "domp",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "threshold calibrated to p_fa = 0.01 on 40 frames" in out
    assert "receiver domp" in out
    for i in range(3):
        assert f"frame {i:4d}:" in out
    assert out.count("    truth ") == 3 and out.count("    detections ") == 3
    assert "over 3 frames: p_md = " in out and "GOSPA = " in out and "SER = " in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_isac_sim_rejects_bad_options(capsys):
    with pytest.raises(SystemExit) as exc:
        isac_sim.main(["--frames", "0"])
    assert exc.value.code == 2
    assert "--frames must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        isac_sim.main(["--set", "scene.max_target=3"])
    assert exc.value.code == 2
    assert "did you mean 'scene.max_targets'" in capsys.readouterr().err


def _subscribe(endpoint, pmt_mode=False):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.setsockopt(zmq.RCVTIMEO, 1000)
    sock.connect(endpoint)
    return sock


def _drain(sock, pmt_mode):
    got = []
    try:
        while True:
            got.append(isac_subscribe._receive(sock, pmt_mode))
    except zmq.Again:
        pass
    sock.close(linger=0)
    return got


@pytest.mark.parametrize("pmt_mode", [False, True])
def test_zeromq_publication_reaches_a_subscriber(sc, pmt_mode):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sock = _subscribe(endpoint)
    seen = {}
    kw = {"zmq_pmt": endpoint} if pmt_mode else {"zmq_json": endpoint}
    tb = SimFlowgraph(sc, N, THRESHOLD, on_frame=lambda f, t, d, e: seen.__setitem__(f, d), **kw)
    time.sleep(0.5)  # PUB/SUB: let the subscription reach the publisher before frames flow
    tb.run()
    tb.close()
    got = _drain(sock, pmt_mode)
    dets = {m["frame"]: m for topic, m in got if topic == "detections"}
    metrics = [m for topic, m in got if topic == "metrics"]
    assert sorted(dets) == list(range(N))
    for f, d in seen.items():
        assert dets[f]["count"] == d.count
        np.testing.assert_allclose(dets[f]["range_m"], d.range_m, atol=1e-9)
    # one running-metrics message per frame, non-decreasing, the last one over all N frames
    counts = [m["frames"] for m in metrics]
    assert len(counts) == N and counts == sorted(counts) and counts[-1] == N
    assert metrics[-1]["comm_frames"] == N
    truths = [m for topic, m in got if topic == "truth"]
    assert [int(t["frame"]) for t in truths] == list(range(N))
    if not pmt_mode:
        json.dumps(got)  # plain JSON all the way


def test_subscriber_app_prints_json_messages(capsys):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    from gnuradio.isac.publish import encode

    def publish():
        time.sleep(0.5)
        for i in range(3):
            pub.send_multipart(
                encode(
                    "detections",
                    {
                        "frame": i,
                        "count": 1,
                        "angle_deg": np.array([-30.0 - i]),
                        "range_m": np.array([50.0]),
                        "gain": np.array([np.nan]),
                    },
                )
            )

    t = threading.Thread(target=publish)
    t.start()
    assert isac_subscribe.main([endpoint, "--count", "3", "--timeout", "5"]) == 0
    t.join()
    pub.close(linger=0)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"[detections] frame {i}: 1 targets  ({-30.0 - i:.2f} deg, 50.0 m)" for i in range(3)]


def test_json_encoding_is_strict():
    from gnuradio.isac.messages import jsonable
    from gnuradio.isac.publish import encode

    topic, body = encode(
        "metrics",
        {
            "p_md": np.float64(np.nan),
            "frames": np.int64(3),
            "x": np.array([1.5, np.inf]),
            "valid": np.bool_(True),
            "c": 1 + 2j,
        },
    )
    assert topic == b"metrics"
    assert json.loads(body) == {"p_md": None, "frames": 3, "x": [1.5, None], "valid": True, "c": [1.0, 2.0]}
    assert jsonable({"a": (1, 2.5)}) == {"a": [1, 2.5]}


def test_json_publisher_block_sends_messages_as_json():
    import pmt

    from gnuradio.isac import json_publisher
    from gnuradio.isac.messages import to_pmt

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sock = _subscribe(endpoint)
    blk = json_publisher(endpoint)
    time.sleep(0.5)
    blk.handle_detections(to_pmt({"frame": 7, "count": 1, "angle_deg": np.array([-31.0]), "range_m": np.array([42.0])}))
    blk.handle_metrics(pmt.intern("not a dict"))  # logged and dropped, never fatal
    got = _drain(sock, False)
    assert got == [("detections", {"frame": 7, "count": 1, "angle_deg": [-31.0], "range_m": [42.0]})]
    assert blk.published == 1
    with pytest.raises(ValueError, match="isac_json_publisher: parameter 'address'"):
        json_publisher("not an endpoint")


def test_nnbl_receiver_refuses_a_threshold_no_probability_can_pass(sc, nn_weights):
    from gnuradio import isac

    with pytest.raises(isac.BlockParameterError, match="'threshold' must be < 1 with receiver 'nn'"):
        isac.omp_receiver(sc, method="nn", weights=nn_weights)  # default: OMP's 3.039e5
    assert isac.omp_receiver(sc, method="nn", weights=nn_weights, threshold=0.5).receiver == "nn"


def test_isac_sim_validates_endpoints_and_prints_the_bound_one(sc, tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    for flag, bad in (("--zmq-json", "tcp://127.0.0.1:99999"), ("--zmq", "")):
        with pytest.raises(SystemExit) as exc:
            isac_sim.main(["--config", str(cfg), "--frames", "1", flag, bad])
        assert exc.value.code == 2
        assert flag in capsys.readouterr().err
    code = isac_sim.main(
        [
            "--config",
            str(cfg),
            "--frames",
            "2",
            "--quiet",
            "--no-progress",
            "--threshold",
            "2e4",
            "--method",
            "baseline",
            "--zmq-json",
            "tcp://127.0.0.1:0",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    port = int(err.split("publishing json on tcp://127.0.0.1:")[1].split()[0])
    assert 0 < port < 65536
