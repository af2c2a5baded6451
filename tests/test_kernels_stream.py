"""C++ kernels of the streaming blocks against their numpy references: the random stream of
simulation.frame_rng (numpy's SeedSequence, PCG64 and distributions, bit for bit), the channel
of model.channels_stream (scenes and CSI bit for bit, signals to float rounding), the
reciprocal filter of model.reciprocal (bit for bit) and the PMT dict conversions of the
blocks (the same PMTs and python values as the pmt Python API)."""

import numpy as np
import pmt
import pytest
from gnuradio import isac

from gnuradio.isac.config import Scenario
from gnuradio.isac.messages import pmt_form
from gnuradio.isac.model import array as arr
from gnuradio.isac.model.channels import comm_tap_variances
from gnuradio.isac.model.channels_stream import array_frame, channel_frames, channel_frames_cpp
from gnuradio.isac.model.ofdm import qpsk_map, random_messages
from gnuradio.isac.model.reciprocal import reciprocal_filter
from gnuradio.isac.model.scene import Scene, sensing_gain_variance
from gnuradio.isac.simulation import STREAMS, frame_rng

ENTROPY = [(0, 1, 0), (0, 1, 5), (123, 2, 99999), (2**40 + 3, 4, 2**33 + 1), (7, 3, 2**64 - 1), (2**63, 1, 1)]


def test_the_module_was_built_with_numpy_random():
    """The blocks rely on it for speed; a build without libnpyrandom falls back to numpy."""
    assert isac.numpy_stream_available()
    assert isac.numpy_stream_inline_ziggurat()  # the inline fast path reproduced numpy's ziggurat


@pytest.mark.parametrize("seed, stream, index", ENTROPY)
def test_seeding_equals_numpy_seed_sequence_and_pcg64(seed, stream, index):
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, index])))
    state = rng.bit_generator.state["state"]
    assert isac.numpy_stream_state(seed, stream, index) == (state["state"], state["inc"])


@pytest.mark.parametrize("seed, stream, index", ENTROPY[:4])
@pytest.mark.parametrize("integers, high", [(0, 3), (1, 5), (3, 3), (255, 3), (256, 3), (7, 6), (33, 2**40)])
def test_draws_equal_numpy_generator(seed, stream, index, integers, high):
    """integers (odd counts leave a buffered 32-bit half for the next call, ranges with and
    without Lemire rejections, 64-bit ranges), then 50,000 normals (ziggurat fast path, tails,
    the first strip), then uniforms: the same values as numpy's Generator, bit for bit."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, index]))
    want = (rng.integers(0, high + 1, size=integers), rng.standard_normal(50_000), rng.uniform(0, 1, 7))
    got = isac.numpy_stream_draws(seed, stream, index, integers, high, 50_000, 7)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert np.abs(got[1]).max() > 3.7  # the ziggurat's tail beyond r = 3.654 was exercised


@pytest.mark.parametrize("S", [256, 255, 1])
def test_frame_messages_equal_the_message_model(S):
    got = isac.frame_messages(3, STREAMS["test"], 10, 20, S)
    want = np.stack([random_messages(frame_rng(3, "test", 10 + b), S) for b in range(20)])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def channel_case(K=16, S=64, max_targets=5, scene=None, impairment="spacing", seed=5, stream="test"):
    sc = Scenario.default().with_overrides(
        {"array.antennas": K, "ofdm.subcarriers": S, "run.seed": seed, "scene.max_targets": max(1, max_targets)}
    )  # 0: the kernel only
    lam = sc.wavelength_m
    array = arr.spacing_array(arr.draw_spacings(K, lam, 2e-4, 3), lam, impairment)
    g2 = sensing_gain_variance(sc.scene["snr_sensing_db"], K, 1.0)
    taps = comm_tap_variances(sc.scene["comm_taps"], sc.scene["snr_comm_db"], S, 1.0)
    params = dict(
        max_targets=max_targets,
        sector_rad=sc.target_sector_rad,
        range_m=sc.range_interval_m,
        gain_variance=g2,
        comm_sector_rad=sc.comm_sector_rad,
        spacing_hz=sc.ofdm["spacing_hz"],
        noise_power=1.0,
        tap_variances=taps,
        scene=scene,
    )
    fixed = () if scene is None else (scene.angles_rad, scene.ranges_m, scene.gains)
    kernel = isac.FrameChannel(
        array.positions_m,
        lam,
        params["spacing_hz"],
        S,
        max_targets,
        params["sector_rad"],
        params["range_m"],
        g2,
        params["comm_sector_rad"],
        taps,
        1.0,
        *fixed,
    )
    return sc, array, params, kernel


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(S=63, max_targets=7),
        dict(max_targets=0),
        dict(impairment="cumulative", seed=11, stream="calibration"),
        dict(scene=Scene(np.deg2rad([-35.0, -25.0]), [40.0, 150.0], [2 + 1j, -1.5j])),
    ],
)
def test_frame_channel_equals_channel_frame(rng, case):
    """Scenes, comm angles and the CSI bit for bit, Y_r and y_c to float rounding, for 12 frames of
    the stream (X = f x^T as the precoder sends it), with several threads and into ``out``."""
    stream = case.pop("stream", "test")
    sc, array, params, kernel = channel_case(**case, stream=stream)
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    f = (rng.standard_normal(K) + 1j * rng.standard_normal(K)).astype(np.complex64)
    X = array_frame(f, qpsk_map(rng.integers(0, 4, (12, S))))
    seed = sc.run["seed"]
    want = channel_frames(lambda i: frame_rng(seed, stream, i), 40, array, X, f, **params)
    out = np.empty((12, K, S), np.complex64)
    for threads, dest in ((1, None), (3, out)):
        got = channel_frames_cpp(kernel, seed, STREAMS[stream], 40, array, X, f, threads, dest)
        if dest is not None:
            assert got.y_sensing is dest or np.shares_memory(got.y_sensing, dest)
        np.testing.assert_array_equal(got.counts, want.counts)
        for b, n in enumerate(want.counts):
            np.testing.assert_array_equal(got.angles_rad[b, :n], want.angles_rad[b, :n])
            np.testing.assert_array_equal(got.ranges_m[b, :n], want.ranges_m[b, :n])
            np.testing.assert_array_equal(got.gains[b, :n], want.gains[b, :n])
        np.testing.assert_array_equal(got.comm_angle_rad, want.comm_angle_rad)
        np.testing.assert_array_equal(got.csi, want.csi)
        scale = np.abs(want.y_sensing).max()
        np.testing.assert_allclose(got.y_sensing, want.y_sensing, rtol=0, atol=2e-6 * scale)
        np.testing.assert_allclose(got.y_comm, want.y_comm, rtol=0, atol=2e-6 * np.abs(want.y_comm).max())
        assert got.valid.all()
    if case.get("max_targets") == 0:
        assert not got.counts.any()


def test_frame_channel_refuses_bad_input():
    sc, array, params, kernel = channel_case()
    with pytest.raises(ValueError, match=r"FrameChannel.run: X must have shape \(B, 16, 64\)"):
        kernel.run(np.zeros((2, 64, 16), np.complex64), 0, 1, 0)
    with pytest.raises(ValueError, match="out must be a writable C-contiguous complex64 array of shape"):
        kernel.run(np.zeros((2, 16, 64), np.complex64), 0, 1, 0, 1, np.zeros((2, 16, 64), np.complex128))
    with pytest.raises(ValueError, match="positions_m"):
        isac.FrameChannel(np.zeros(0), 0.005, 120e3, 64, 5, (-1, 0), (10, 20), 1.0, (0, 1), np.ones(2), 1.0)


def test_reciprocal_filter_frames_equal_the_model_bit_for_bit(rng):
    B, K, S = 5, 8, 40
    y = (rng.standard_normal((B, K, S)) + 1j * rng.standard_normal((B, K, S))).astype(np.complex64) * 10
    x = qpsk_map(rng.integers(0, 4, (B, S)))
    x[1] = (rng.standard_normal(S) + 1j * rng.standard_normal(S)).astype(np.complex64)  # any symbols
    x[2, 3], x[2, 4], x[3, 5], x[3, 6] = 0, 1e-7, np.nan, np.complex64(complex(1, np.inf))
    y[4, 2, 7] = np.nan
    want = reciprocal_filter(y, x, invalid="zero")
    got, nulled = isac.reciprocal_filter_frames(y, x)
    np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))  # bits, NaN included
    np.testing.assert_array_equal(nulled, [0, 0, 2, 2, 0])
    out = np.empty_like(y)
    res, _ = isac.reciprocal_filter_frames(y, x, threads=2, out=out)
    np.testing.assert_array_equal(out.view(np.uint64), want.view(np.uint64))
    with pytest.raises(ValueError, match=r"x must have shape \(5, 40\)"):
        isac.reciprocal_filter_frames(y, x[:, :3])


def test_array_frames_equal_the_model_bit_for_bit(rng):
    f = (rng.standard_normal(16) + 1j * rng.standard_normal(16)).astype(np.complex64)
    x = (rng.standard_normal((4, 40)) + 1j * rng.standard_normal((4, 40))).astype(np.complex64)
    x[1, 2] = np.nan
    want = array_frame(f, x)
    np.testing.assert_array_equal(isac.array_frames(f, x).view(np.uint64), want.view(np.uint64))
    out = np.empty((4, 16, 40), np.complex64)
    isac.array_frames(f, x, 2, out)
    np.testing.assert_array_equal(out.view(np.uint64), want.view(np.uint64))


MESSAGES = [
    {
        "frame": 5,
        "count": 3,
        "valid": True,
        "angle_deg": np.array([1.0, -2.5, 3.0]),
        "range_m": [10.0, 20.0, 30.0],
        "x_m": np.zeros(0),
        "peak": np.array([1e30, 2.0, 3.0], np.float32),
    },
    {
        "frame": np.int64(7),
        "sim_frame": 9,
        "valid": np.bool_(False),
        "comm_angle_deg": np.float64(31.5),
        "gain_abs": np.array([0.5]),
        "csi": np.array([1 + 2j, 3j]),
        "name": "abc",
        "nan": float("nan"),
    },
]


@pytest.mark.parametrize("items", MESSAGES)
def test_pmt_dicts_equal_those_of_gnu_radios_pmt_codec(items):
    """The C++ codec of the messages (gnuradio.isac.pmt_dict_from / pmt_dict_to) against GNU
    Radio's own pmt.to_pmt / pmt.to_python (the messages' fallback when the module is not built)."""
    fast = isac.pmt_dict_from(items)
    ref = pmt.to_pmt(pmt_form(items))
    assert pmt.write_string(fast) == pmt.write_string(ref)
    for msg in (fast, ref):
        got, want = isac.pmt_dict_to(msg), pmt.to_python(msg)
        assert list(got) == list(want)
        for k in want:
            assert type(got[k]) is type(want[k]), k
            if isinstance(want[k], np.ndarray):
                assert got[k].dtype == want[k].dtype
            np.testing.assert_array_equal(got[k], want[k])


def test_pmt_rows_equal_make_dict_of_each_row():
    counts = np.array([2, 0, 3])
    vec = np.arange(9.0).reshape(3, 3)
    fields = [
        ("frame", np.array([4, 5, 6])),
        ("count", counts),
        ("valid", np.array([True, False, True])),
        ("angle_deg", vec),
        ("comm_angle_deg", np.array([0.5, 1.5, 2.5])),
    ]
    rows = isac.pmt_dicts(fields, counts)
    for b, msg in enumerate(rows):
        want = pmt.to_pmt(
            pmt_form(
                {
                    "frame": int(4 + b),
                    "count": int(counts[b]),
                    "valid": b != 1,
                    "angle_deg": vec[b, : counts[b]],
                    "comm_angle_deg": 0.5 + b,
                }
            )
        )
        assert pmt.equal(msg, want), (pmt.write_string(msg), pmt.write_string(want))


def test_frame_max_abs_equals_numpy_with_nan_inf_and_zero_frames():
    """The receiver's amplitude scan: max |re|, |im| per frame, NaN propagated, as numpy gives it."""
    rng = np.random.default_rng(8)
    y = (rng.normal(size=(9, 8, 16)) + 1j * rng.normal(size=(9, 8, 16))).astype(np.complex64) * 1e3
    y[1, 2, 3] = np.nan
    y[2, 0, 0] = np.inf
    y[3, 7, 15] = complex(np.nan, -np.inf)
    y[4, 1, 1] = complex(5.0, -np.inf)
    y[5] = 0
    y[6, 4, 4] = complex(-3e38, 0.0)
    y[7] *= 1e-40  # subnormal floats
    ref = np.abs(y.reshape(9, -1).view(np.float32)).max(axis=1)
    got = isac.frame_max_abs(y)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)  # NaN == NaN here
    assert np.isnan(got[1]) and np.isnan(got[3]) and got[2] == np.inf and got[5] == 0.0 and got[6] == np.float32(3e38)
    assert isac.frame_max_abs(y[:0]).shape == (0,)
    assert isac.frame_max_abs(y[:, 0, 0]).shape == (9,)  # (B,) of single values
