"""messages: the truth and detections records and their dict / JSON / PMT forms, the batches'
PMT dicts equal to their records' (the C++ builder and GNU Radio's pmt.to_pmt give the same
dict), positions by eq. (2), and the refusals of malformed messages with their reason."""

import json
import math

import numpy as np
import pmt
import pytest

from gnuradio.isac import messages as M
from gnuradio.isac.model.channels_stream import FrameBatch
from gnuradio.isac.model.omp import OmpResult
from gnuradio.isac.model.scene import Scene

RNG = np.random.default_rng(7)


def detections(frame=3, n=2):
    return M.Detections(
        frame, RNG.uniform(-60, 60, n), RNG.uniform(10, 90, n), RNG.uniform(0, 1, n), RNG.uniform(1, 9, n)
    )


def truth(frame=3, n=2):
    return M.Truth(
        frame, RNG.uniform(-60, 60, n), RNG.uniform(10, 90, n), RNG.uniform(0, 1, n), 42.5, sim_frame=frame + 100
    )


def assert_records_equal(a, b):
    assert type(a) is type(b)
    da, db = a.to_dict(), b.to_dict()
    assert list(da) == list(db)
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


@pytest.mark.parametrize("make", [truth, detections])
@pytest.mark.parametrize("n", [0, 1, 3])
def test_records_round_trip_through_dict_json_and_pmt(make, n):
    rec = make(n=n)
    cls = type(rec)
    assert list(rec.to_dict()) == list(M.TRUTH_KEYS if cls is M.Truth else M.DETECTION_KEYS)
    assert_records_equal(cls.from_dict(rec.to_dict()), rec)
    assert_records_equal(cls.from_pmt(rec.to_pmt()), rec)
    assert_records_equal(cls.from_dict(json.loads(rec.to_json())), rec)
    assert rec.count == n and cls.from_pmt(rec.to_pmt()).count == n


def test_detections_positions_follow_eq_2():
    d = M.Detections(0, [30.0, -90.0], [10.0, 2.0])
    np.testing.assert_allclose(d.x_m, [10 * math.cos(math.pi / 6), 0.0], atol=1e-12)
    np.testing.assert_allclose(d.y_m, [5.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(d.positions_m, np.stack([d.x_m, d.y_m], -1))
    # gain and peak are optional in the dict form (NaN), positions recomputed when absent
    e = M.Detections.from_dict({"frame": 0, "angle_deg": [30.0], "range_m": [10.0]})
    assert np.isnan(e.gain).all() and np.isnan(e.peak).all() and e.x_m[0] == pytest.approx(10 * math.cos(math.pi / 6))


def test_json_form_is_strict_json():
    t = M.Truth(1, [np.nan], [np.inf], [0.5])
    text = t.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["angle_deg"] == [None] and json.loads(text)["comm_angle_deg"] is None


def test_the_pmt_form_is_gnu_radios_own():
    """to_pmt (C++ when built) builds the dict that pmt.to_pmt of pmt_form builds."""
    for rec in (truth(n=2), detections(n=3), M.Detections.invalid(9), M.Truth.invalid(4, 104)):
        assert pmt.serialize_str(rec.to_pmt()) == pmt.serialize_str(pmt.to_pmt(M.pmt_form(rec.to_dict())))
        assert pmt.is_f64vector(pmt.dict_ref(rec.to_pmt(), pmt.intern("angle_deg"), pmt.PMT_NIL))


def test_batches_give_the_pmts_of_their_records():
    batch = FrameBatch.empty(5, 2, 4, 3)  # row 2 not simulated (invalid)
    for b, n in ((0, 1), (1, 0), (3, 3), (4, 2)):
        scene = Scene(RNG.uniform(-1, 1, n), RNG.uniform(10, 90, n), RNG.normal(size=n) + 1j)
        batch.put(b, scene, np.zeros((2, 4)), np.zeros(4), np.zeros(4), 0.1 * b)
    tb = M.TruthBatch.of_frames(10, 110, batch)
    records = tb.records()
    assert [r.frame for r in records] == list(range(10, 15)) and [r.sim_frame for r in records] == list(range(110, 115))
    assert [r.count for r in records] == [1, 0, 0, 3, 2] and [r.valid for r in records] == [
        True,
        True,
        False,
        True,
        True,
    ]
    np.testing.assert_allclose(records[3].angle_deg, np.rad2deg(batch.angles_rad[3]))
    np.testing.assert_allclose(records[4].gain_abs, np.abs(batch.gains[4, :2]))
    assert records[4].comm_angle_deg == pytest.approx(np.rad2deg(0.4))
    for got, rec in zip(tb.pmts(), records):
        assert pmt.serialize_str(got) == pmt.serialize_str(rec.to_pmt())
    # detections: OMP output of 4 frames, row 2 not filled (a skipped frame)
    T, B = 3, 4
    res = OmpResult(
        angle_index=np.zeros((B, T), int),
        delay_index=np.zeros((B, T), int),
        angles_rad=RNG.uniform(-1, 1, (B, T)),
        delays_s=RNG.uniform(1e-7, 5e-7, (B, T)),
        peaks=np.array([[9.0, 5.0, 1.0], [0.5, 9.0, 9.0], [9.0, 9.0, 9.0], [9.0, 9.0, 9.0]]),
        gains=RNG.normal(size=(B, T, T)) + 1j * RNG.normal(size=(B, T, T)),
    )
    db = M.DetectionBatch(20, B, T)
    rows = np.array([0, 1, 3])
    db.fill(
        rows,
        OmpResult(
            *(None if getattr(res, f) is None else getattr(res, f)[rows] for f in OmpResult.__dataclass_fields__)
        ),
        threshold=2.0,
        scales=np.array([1.0, 2.0, 0.5]),
    )
    recs = db.records()
    assert [r.count for r in recs] == [2, 0, 0, 3]  # Algorithm 1 stops at the first peak <= delta
    assert [r.valid for r in recs] == [True, True, False, True]
    # a scale s undoes an input scaling: gains times s, peaks times s^2
    np.testing.assert_array_equal(recs[3].peak, res.peaks[3] * 0.25)
    np.testing.assert_array_equal(recs[3].gain, np.abs(res.gains[3, 2]) * 0.5)
    np.testing.assert_allclose(recs[0].range_m, res.ranges_m[0, :2])
    for got, rec in zip(db.pmts(), recs):
        assert pmt.serialize_str(got) == pmt.serialize_str(rec.to_pmt())


@pytest.mark.parametrize(
    "d, reason",
    [
        ({"angle_deg": [1.0], "range_m": [2.0]}, "needs an integer 'frame'"),
        ({"frame": 1.5, "angle_deg": [], "range_m": []}, "'frame' must be an integer"),
        ({"frame": True, "angle_deg": [], "range_m": []}, "needs an integer 'frame'"),
        ({"frame": 0, "angle_deg": [1.0, 2.0], "range_m": [2.0]}, r"angle_deg and range_m differ in length \(2, 1\)"),
        ({"frame": 0, "angle_deg": [1.0], "range_m": [2.0], "count": 2}, "count 2 does not match the 1 entries"),
        ({"frame": 0, "angle_deg": ["x"], "range_m": [2.0]}, "angle_deg must be a vector of numbers"),
    ],
)
@pytest.mark.parametrize("cls", [M.Truth, M.Detections])
def test_malformed_messages_are_refused_with_their_reason(cls, d, reason):
    with pytest.raises(M.MessageError, match=reason):
        cls.from_dict(d)


def test_from_pmt_refuses_what_is_not_a_dict():
    with pytest.raises(M.MessageError, match="expected a PMT dict"):
        M.Detections.from_pmt(pmt.intern("garbage"))
    with pytest.raises(M.MessageError, match="gain_abs"):
        M.Truth.from_dict({"frame": 0, "angle_deg": [1.0], "range_m": [2.0], "gain_abs": [1.0, 2.0]})


def test_a_process_that_built_pmts_in_cpp_exits_cleanly():
    """The C++ PMT builder's cached Python objects outlive the interpreter without releasing
    them at exit (a static py::object did: the process aborted after its work, exit code 134)."""
    import subprocess
    import sys

    code = "from gnuradio.isac import messages as M\nx = M.Truth(0, [1.0], [2.0]).to_pmt()\nM.Truth.from_pmt(x)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
