"""isac.map_display: the QT GUI angle-delay map display, rendered on Qt's offscreen platform
and checked pixel by pixel (map maximum, truth circles, detection crosses, frame matching),
its GRC definition, and the GUI flowgraph apps/isac_gui.grc with the display in it."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from gnuradio import (  # noqa: E402
    blocks,
    gr,
    isac,  # noqa: E402
)
from PyQt5 import (  # noqa: E402
    QtCore,
    QtGui,
    QtWidgets,  # Debian python3-pyqt5, installed by tools/setup.sh
)

from gnuradio.isac import BlockParameterError  # noqa: E402
from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.display import DETECTION_RGB, LUT, TRUTH_RGB, colour_image, fade, nice_ticks, xy_extent  # noqa: E402
from gnuradio.isac.messages import to_pmt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
A, D = 60, 40  # angle_grid, delay_grid of the unit tests
SECTOR, RANGE = (-40.0, -20.0), (10.0, 190.0)
ANGLES, RANGES = np.linspace(*SECTOR, A), np.linspace(*RANGE, D)


@pytest.fixture(scope="module")
def qapp():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def noise_map(peak=(15, 28), seed=0, db=True):
    """A map in dB: noise around -20 dB with a 0 dB peak at angle index peak[0], delay index peak[1]."""
    m = -20.0 + np.random.default_rng(seed).normal(0.0, 1.0, (A, D))
    m[peak] = 0.0
    return (m if db else 10.0 ** (m / 10.0)).astype(np.float32)


def feed(display, maps):
    """Run maps (frames 0, 1, ...) through the display's stream input in a top_block."""
    tb = gr.top_block()
    src = blocks.vector_source_f(np.concatenate([m.ravel() for m in maps]).tolist(), False, A * D)
    tb.connect(src, display)
    tb.run()


def message(frame, angles, ranges, **extra):
    return to_pmt(
        {"frame": frame, "angle_deg": np.asarray(angles, float), "range_m": np.asarray(ranges, float), **extra}
    )


def render(display, size=(640, 480), which="map") -> np.ndarray:
    """Lay out the block's widget so that each picture is ``size``, refresh one (``which``: "map"
    or "xy") and grab it: (h, w, 3) uint8."""
    panel = display.qwidget()
    panel.resize(size[0] * (2 if display.xy_widget() is not None else 1), size[1])
    panel.layout().activate()
    w = display.map_widget() if which == "map" else display.xy_widget()
    assert (w.width(), w.height()) == size
    w.refresh()
    img = w.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    return (
        np.frombuffer(ptr, np.uint8)
        .reshape(img.height(), img.bytesPerLine())[:, : 3 * img.width()]
        .reshape(img.height(), img.width(), 3)
        .copy()
    )


def plot_mask(display, shape):
    r = display.map_widget().plot_rect()
    mask = np.zeros(shape[:2], bool)
    mask[int(np.ceil(r.top())) + 1 : int(r.bottom()) - 1, int(np.ceil(r.left())) + 1 : int(r.right()) - 1] = True
    return mask


def colour_near(img, xy, rgb, box=10) -> int:
    """Number of pixels of exactly ``rgb`` within +-box of widget point xy."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = img[max(0, y - box) : y + box + 1, max(0, x - box) : x + box + 1]
    return int(np.all(patch == np.array(rgb, np.uint8), axis=-1).sum())


SC = Scenario.default().with_overrides({"scene.target_sector_deg": list(SECTOR), "scene.range_m": list(RANGE)})


def make(**kw):
    args = dict(scenario=SC, map_points=(A, D))
    args.update(kw)
    return isac.map_display(**args)


# --- pure functions ---------------------------------------------------------------------
def test_colour_image_orientation_floor_and_linear_input():
    m = noise_map(peak=(5, 30))
    rgb = colour_image(m, True, -30.0)
    assert rgb.shape == (D, A, 3) and rgb.dtype == np.uint8
    # the maximum is at angle column 5, delay 30 -> image row D-1-30 (range up), coloured as 0 dB
    assert tuple(rgb[D - 1 - 30, 5]) == tuple(LUT[255])
    assert np.all(rgb.reshape(-1, 3).sum(1) <= int(LUT[255].astype(int).sum()))
    # below the floor: the first colour
    low = m.copy()
    low[0, 0] = -99.0
    assert tuple(colour_image(low, True, -30.0)[D - 1, 0]) == tuple(LUT[0])
    # non-finite cells at the floor, the rest unchanged
    bad = m.copy()
    bad[1, 1] = np.nan
    assert tuple(colour_image(bad, True, -30.0)[D - 2, 1]) == tuple(LUT[0])
    # linear input, db=False, gives the same picture (dB re maximum); scaling does not matter
    lin = noise_map(peak=(5, 30), db=False)
    assert np.abs(colour_image(1e3 * lin, False, -30.0).astype(int) - rgb.astype(int)).max() <= 1


def test_nice_ticks():
    assert nice_ticks(-40.0, -20.0, 4) == [-40.0, -35.0, -30.0, -25.0, -20.0]
    assert nice_ticks(10.0, 190.0, 4) == [50.0, 100.0, 150.0]
    assert nice_ticks(10.0, 190.0, 9) == [20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0, 160.0, 180.0]


# --- parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, param",
    [
        (dict(map_points=(0, D)), "map_points"),
        (dict(map_points=(A, 2.5)), "map_points"),
        (dict(map_points=A), "map_points"),
        (dict(scenario={"scene": {"target_sector_deg": [-20.0, -40.0]}}), "scenario"),
        (dict(scenario={"scene": {"range_m": [-5.0, 10.0]}}), "scenario"),
        (dict(db="yes"), "db"),
        (dict(floor_db=0.0), "floor_db"),
        (dict(floor_db=float("nan")), "floor_db"),
        (dict(update_hz=0), "update_hz"),
        (dict(update_hz=-1.0), "update_hz"),
        (dict(xy_frames=-1), "xy_frames"),
        (dict(xy_frames=33), "xy_frames"),
        (dict(xy_frames=2.5), "xy_frames"),
    ],
)
def test_bad_parameters_name_block_and_parameter(qapp, kw, param):
    with pytest.raises(BlockParameterError, match=f"isac_map_display: parameter '{param}'"):
        make(**kw)


def test_setters_validate(qapp):
    d = make()
    with pytest.raises(BlockParameterError, match="'floor_db'"):
        d.set_floor_db(3.0)
    with pytest.raises(BlockParameterError, match="'update_hz'"):
        d.set_update_hz(0.0)
    d.set_update_hz(25.0)
    d.map_widget().refresh()
    assert d.map_widget().timer.interval() == 40


# --- rendering ----------------------------------------------------------------------------
def test_renders_map_maximum_truth_and_detections_of_the_frame(qapp):
    d = make()
    peak = (15, 28)
    feed(d, [noise_map(seed=1), noise_map(peak=peak, seed=2)])  # frames 0 and 1
    w = d.map_widget()

    # map only (no messages yet): the newest frame, brightest pixel at the map's maximum
    img = render(d)
    assert w.frame == 1
    mask = plot_mask(d, img.shape)
    bright = np.where(mask, img[..., 0].astype(int) + img[..., 1], -1)
    y, x = np.unravel_index(np.argmax(bright), bright.shape)
    px, py = w.to_pixel(ANGLES[peak[0]], RANGES[peak[1]])
    r = w.plot_rect()
    cell_w, cell_h = r.width() / A, r.height() / D
    assert abs(x - px) <= cell_w and abs(y - py) <= cell_h, ((x, y), (px, py))
    assert tuple(img[y, x]) == tuple(LUT[255])
    assert not np.any(np.all(img[mask] == TRUTH_RGB, axis=-1)) and not np.any(
        np.all(img[mask] == DETECTION_RGB, axis=-1)
    )

    # messages: truth of frame 1 (two targets), detections of frame 1 (one), and messages of
    # other frames at other places, which must not be drawn
    truth1 = ([ANGLES[peak[0]], -24.0], [RANGES[peak[1]], 60.0])
    det1 = ([ANGLES[peak[0]] + 0.3], [RANGES[peak[1]] + 3.0])
    d.handle_truth(message(0, [-36.0], [150.0]))
    d.handle_truth(message(1, *truth1))
    d.handle_detections(message(1, *det1, valid=True))
    d.handle_detections(message(0, [-30.0], [40.0]))
    d.handle_detections(message(7, [-22.0], [170.0]))  # no map for frame 7: ignored for display
    img = render(d)
    assert w.frame == 1
    for a, rg in zip(*truth1):
        assert colour_near(img, w.to_pixel(a, rg), TRUTH_RGB) >= 12, (a, rg)
    assert colour_near(img, w.to_pixel(det1[0][0], det1[1][0]), DETECTION_RGB) >= 12
    for a, rg in [(-36.0, 150.0), (-30.0, 40.0), (-22.0, 170.0)]:
        xy = w.to_pixel(a, rg)
        assert colour_near(img, xy, TRUTH_RGB) == 0 and colour_near(img, xy, DETECTION_RGB) == 0, (a, rg)
    # no marker colour anywhere else in the map
    reds = np.argwhere(np.all(img == DETECTION_RGB, axis=-1) & mask)
    dx, dy = w.to_pixel(det1[0][0], det1[1][0])
    assert np.all(np.abs(reds[:, 1] - dx) <= 10) and np.all(np.abs(reds[:, 0] - dy) <= 10)


def test_shows_newest_frame_with_detections(qapp):
    d = make()
    feed(d, [noise_map(peak=(10 + i, 5 + i), seed=i) for i in range(5)])  # frames 0..4
    w = d.map_widget()
    render(d)
    assert w.frame == 4  # no detections at all: newest map
    d.handle_truth(message(2, [-30.0], [100.0]))
    d.handle_detections(message(2, [-30.0], [100.0]))
    d.handle_detections(message(3, [], []))
    img = render(d)
    assert w.frame == 3 and w.detections is not None and len(w.detections["angle_deg"]) == 0
    assert w.truth is None  # the truth of frame 3 has not come
    assert colour_near(img, w.to_pixel(-30.0, 100.0), TRUTH_RGB) == 0
    d.handle_detections(message(4, [-25.0], [80.0]))
    render(d)
    assert w.frame == 4


def test_bounded_history_and_bad_messages(qapp):
    from gnuradio.isac.blocks.map_display import KEEP_FRAMES

    d = make()
    for f in range(3 * KEEP_FRAMES):
        d.handle_truth(message(f, [-30.0], [100.0]))
    d.handle_truth(to_pmt({"angle_deg": np.zeros(1), "range_m": np.zeros(1)}))  # no frame: dropped
    d.handle_detections(message(5, [-30.0, -31.0], [100.0]))  # lengths differ: dropped
    assert len(d._truth) == KEEP_FRAMES and min(d._truth) == 2 * KEEP_FRAMES
    assert len(d._detections) == 0


def test_qtimer_refreshes_from_the_qt_thread_while_the_flowgraph_runs(qapp):
    """A running flowgraph feeds maps; the widget only changes through its QTimer in the Qt
    event loop (this thread), at most update_hz times per second."""
    d = make(update_hz=20.0)
    w = d.map_widget()
    w.resize(400, 300)
    assert w.image is None
    maps = [noise_map(seed=i) for i in range(20)]
    tb = gr.top_block()
    src = blocks.vector_source_f(np.concatenate([m.ravel() for m in maps]).tolist(), False, A * D)
    thr = blocks.throttle(gr.sizeof_float * A * D, 100)
    tb.connect(src, thr, d)
    paints = []
    orig = w.refresh

    def counting_refresh():
        before = w._drawn
        orig()
        if w._drawn != before:
            paints.append(time.monotonic())

    w.timer.timeout.disconnect()
    w.timer.timeout.connect(counting_refresh)
    tb.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.6:
        qapp.processEvents(QtCore.QEventLoop.AllEvents, 20)
        time.sleep(0.005)
    tb.wait()
    for _ in range(10):
        qapp.processEvents(QtCore.QEventLoop.AllEvents, 20)
        time.sleep(0.06)
    assert w.image is not None and w.frame == 19
    assert 2 <= len(paints) <= 20
    gaps = np.diff(paints)
    assert np.all(gaps >= 0.03), gaps  # 20 Hz: 50 ms timer; never two repaints back to back


# --- the x-y scatter ------------------------------------------------------------------------
def xy_of(angle_deg, range_m):
    """Position (2) in m: x = R cos(theta), y = R sin(theta)."""
    th = np.deg2rad(angle_deg)
    return range_m * np.cos(th), range_m * np.sin(th)


def marker_pixels(img, rgb) -> np.ndarray:
    """(row, col) of the pixels of exactly ``rgb``."""
    return np.argwhere(np.all(img == np.array(rgb, np.uint8), axis=-1))


def test_xy_extent_covers_the_sector_and_the_origin():
    x0, x1, y0, y1 = xy_extent((-40.0, -20.0), (10.0, 190.0), margin=0.0)
    assert (x0, y1) == (0.0, 0.0)  # the array at the origin
    assert x1 == pytest.approx(190.0 * np.cos(np.deg2rad(20.0)))  # far edge at -20 deg
    assert y0 == pytest.approx(-190.0 * np.sin(np.deg2rad(40.0)))  # far edge at -40 deg
    # a sector across broadside reaches x = R_max; one across +-90 deg reaches y = +-R_max
    assert xy_extent((-30.0, 30.0), (5.0, 100.0), margin=0.0)[1] == pytest.approx(100.0)
    assert xy_extent((60.0, 90.0), (5.0, 100.0), margin=0.0)[3] == pytest.approx(100.0)
    pad = 0.05 * (190.0 * np.cos(np.deg2rad(20.0)))
    assert xy_extent((-40.0, -20.0), (10.0, 190.0))[0] == pytest.approx(-pad)


def test_fade():
    assert fade(TRUTH_RGB, 0, 5) == TRUTH_RGB and fade(DETECTION_RGB, 0, 1) == DETECTION_RGB
    dist = [np.abs(np.subtract(fade(TRUTH_RGB, a, 5), (32, 32, 32))).sum() for a in range(5)]
    assert all(a > b for a, b in zip(dist, dist[1:])) and dist[-1] > 0


def test_xy_scatter_draws_truth_and_detections_at_their_positions(qapp):
    d = make()
    w = d.xy_widget()
    img = render(d, which="xy")
    assert w.newest is None and len(marker_pixels(img, TRUTH_RGB)) == 0  # nothing yet
    truth = ([-35.0, -25.0], [60.0, 150.0])
    det = ([-25.3], [148.0])
    d.handle_truth(message(4, *truth))
    d.handle_detections(message(4, *det))
    img = render(d, which="xy")
    assert w.newest == 4
    # equal metres per pixel on both axes, y up, the extent filling the plot rectangle
    (px0, py0), (px1, py1) = w.to_pixel(0.0, 0.0), w.to_pixel(100.0, -100.0)
    assert px1 - px0 == pytest.approx(py1 - py0) and px1 > px0
    r, (x0, x1, y0, y1) = w.plot_rect(), w.extent
    assert w.to_pixel(x0, y0) == pytest.approx((r.left(), r.bottom())) and w.to_pixel(x1, y1) == pytest.approx(
        (r.right(), r.top())
    )
    for a, rg in zip(*truth):
        assert colour_near(img, w.to_pixel(*xy_of(a, rg)), TRUTH_RGB) >= 12, (a, rg)
    cross = w.to_pixel(*xy_of(det[0][0], det[1][0]))
    assert colour_near(img, cross, DETECTION_RGB) >= 12
    # nowhere else: not at (angle, range) read as (x, y), not with cos and sin swapped, not at (0, 0)
    reds = marker_pixels(img, DETECTION_RGB)
    assert np.all(np.abs(reds[:, 1] - cross[0]) <= 9) and np.all(np.abs(reds[:, 0] - cross[1]) <= 9)
    whites = marker_pixels(img, TRUTH_RGB)
    centres = [w.to_pixel(*xy_of(a, rg)) for a, rg in zip(*truth)]
    assert all(min(abs(c[0] - x) + abs(c[1] - y) for c in centres) <= 18 for y, x in whites)
    for wrong in [(det[1][0] * np.sin(np.deg2rad(det[0][0])), det[1][0] * np.cos(np.deg2rad(det[0][0]))), (0.0, 0.0)]:
        assert colour_near(img, w.to_pixel(*wrong), DETECTION_RGB) == 0


def test_xy_empty_frame_draws_nothing_not_even_at_the_origin(qapp):
    d = make()
    w = d.xy_widget()
    d.handle_truth(message(0, [], []))
    d.handle_detections(message(0, [], []))
    img = render(d, which="xy")
    assert w.newest == 0 and len(w.rows) == 1
    for rgb in (TRUTH_RGB, DETECTION_RGB):
        assert len(marker_pixels(img, rgb)) == 0
        assert colour_near(img, w.to_pixel(0.0, 0.0), rgb, box=12) == 0
    # the next frame with a detection: drawn where it is, still nothing at the origin
    d.handle_truth(message(1, [-30.0], [100.0]))
    d.handle_detections(message(1, [-30.2], [101.0]))
    img = render(d, which="xy")
    assert colour_near(img, w.to_pixel(*xy_of(-30.2, 101.0)), DETECTION_RGB) >= 12
    assert colour_near(img, w.to_pixel(0.0, 0.0), DETECTION_RGB, box=12) == 0


def test_xy_shows_the_last_frames_faded_up_to_the_newest_detections(qapp):
    n = 3
    d = make(xy_frames=n)
    w = d.xy_widget()
    place = {f: (-38.0 + 2.0 * f, 20.0 + 15.0 * f) for f in range(10)}  # one target per frame, apart
    for f in range(9):
        d.handle_truth(message(f, [place[f][0]], [place[f][1]]))
    for f in range(8):  # the receiver is one frame behind: no detections of frame 8 yet
        d.handle_detections(message(f, [place[f][0] + 0.5], [place[f][1]]))
    img = render(d, which="xy")
    assert w.newest == 7 and [r[0] for r in w.rows] == [5, 6, 7]
    for f in range(9):
        xy = w.to_pixel(*xy_of(*place[f]))
        if f in (5, 6, 7):
            assert colour_near(img, xy, fade(TRUTH_RGB, 7 - f, n), box=9) >= 10, f
        else:  # older than the last n frames, or newer than the newest detections
            for age in range(n):
                assert colour_near(img, xy, fade(TRUTH_RGB, age, n), box=9) == 0, (f, age)
    # detections of frame 6 faded, of frame 7 at full colour
    assert colour_near(img, w.to_pixel(*xy_of(place[6][0] + 0.5, place[6][1])), fade(DETECTION_RGB, 1, n)) >= 10
    assert colour_near(img, w.to_pixel(*xy_of(place[7][0] + 0.5, place[7][1])), DETECTION_RGB) >= 10
    d.set_xy_frames(1)
    render(d, which="xy")
    assert [r[0] for r in w.rows] == [7]
    with pytest.raises(BlockParameterError, match="'xy_frames'"):
        d.set_xy_frames(0)


def test_xy_frames_zero_shows_the_map_only(qapp):
    d = make(xy_frames=0)
    assert d.xy_widget() is None
    assert d.qwidget().layout().count() == 1 and d.qwidget().layout().itemAt(0).widget() is d.map_widget()
    d2 = make()
    layout = d2.qwidget().layout()
    assert [layout.itemAt(i).widget() for i in range(2)] == [d2.xy_widget(), d2.map_widget()]


# --- GRC ----------------------------------------------------------------------------------
GRCC = shutil.which("grcc")
needs_grcc = pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")


def test_block_yaml():
    doc = yaml.safe_load((REPO / "grc" / "isac_map_display.block.yml").read_text())
    assert doc["id"] == "isac_map_display" and doc["category"] == "[ISAC]" and doc["file_format"] == 1
    assert doc["templates"]["imports"] == "from gnuradio import isac"
    make_t = doc["templates"]["make"]
    assert make_t.startswith("isac.map_display(")
    assert doc["documentation"].strip()
    assert any("0.0 < update_hz <= 1000.0" in a for a in doc["asserts"])
    params = {p["id"] for p in doc["parameters"]}
    assert "gui_hint" in params
    for p in params - {"gui_hint"}:
        assert f"{p}=${{{p}}}" in make_t.replace(" ", ""), p
    assert "qwidget()" in make_t and "gui_hint()" in make_t
    assert {i.get("id") for i in doc["inputs"] if i["domain"] == "message"} == {"truth", "detections"}


def compile_gui(tmp_path: Path) -> Path:
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    res = subprocess.run(
        [sys.executable, GRCC, "-o", str(tmp_path), str(REPO / "apps" / "isac_gui.grc")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp_path / "isac_gui.py"


# Runs the compiled isac_gui.py's top block for a few seconds in a Qt event loop, then checks
# the map display of the running flowgraph and grabs the window (argv: script, seconds, png).
GUI_RUNNER = textwrap.dedent("""
    import importlib.util, sys, time
    import numpy as np
    from PyQt5 import Qt, QtCore, QtGui
    spec = importlib.util.spec_from_file_location("isac_gui", sys.argv[1])
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    app = Qt.QApplication(sys.argv[:1])
    tb = mod.isac_gui(frames=0, seed=0, frame_rate=20)
    tb.resize(1500, 1000)
    tb.start()
    tb.show()
    t0 = time.monotonic()
    while time.monotonic() - t0 < float(sys.argv[2]):
        app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        time.sleep(0.01)
    blk = tb.isac_map_display_0
    assert tb._isac_map_display_0_win is blk.qwidget()
    w, xy = blk.map_widget(), blk.xy_widget()
    print("MAPFRAME", w.frame, "TRUTH", None if w.truth is None else len(w.truth["angle_deg"]),
          "DET", None if w.detections is None else len(w.detections["angle_deg"]), flush=True)
    img = w.grab().toImage()

    def count(image, widget, points, rgb):
        return sum(image.pixelColor(int(widget.to_pixel(*pt)[0]) + dx, int(widget.to_pixel(*pt)[1]) + dy)
                   == QtGui.QColor(*rgb) for pt in points for dx in range(-9, 10) for dy in range(-9, 10))

    white = 0
    if w.truth is not None:
        white = count(img, w, zip(w.truth["angle_deg"], w.truth["range_m"]), (255, 255, 255))
    print("WHITE", white, flush=True)
    # the x-y scatter: the newest frame's truth circles and detection crosses at R (cos, sin) (2),
    # nothing at the origin; the map's frame, when in the scatter, with the map's detections
    xy.refresh()
    ximg = xy.grab().toImage()
    newest = [r for r in xy.rows if r[0] == xy.newest]
    t_pts = [] if not newest or newest[0][1] is None else newest[0][1].tolist()
    d_pts = [] if not newest or newest[0][2] is None else newest[0][2].tolist()
    print("XY", xy.newest, len(xy.rows), len(t_pts), len(d_pts), "XYWHITE",
          count(ximg, xy, t_pts, (255, 255, 255)), "XYRED", count(ximg, xy, d_pts, (255, 0, 0)),
          "ORIGIN", count(ximg, xy, [(0.0, 0.0)], (255, 255, 255)) + count(ximg, xy, [(0.0, 0.0)], (255, 0, 0)),
          flush=True)
    same = [r for r in xy.rows if r[0] == w.frame and r[2] is not None]
    if same and w.detections is not None:
        th = np.deg2rad(w.detections["angle_deg"])
        want = np.stack([w.detections["range_m"] * np.cos(th), w.detections["range_m"] * np.sin(th)], -1)
        print("SAMEFRAME", int(np.allclose(same[0][2].reshape(-1, 2), want.reshape(-1, 2))), flush=True)
    if len(sys.argv) > 3:
        tb.grab().save(sys.argv[3])
    tb.stop(); tb.wait()
""")


@needs_grcc
def test_gui_flowgraph_shows_live_map_with_truth(tmp_path):
    """The compiled GUI flowgraph, run offscreen: its map display shows a frame with the truth
    and detections of that frame, and the truth circles are drawn. With ISAC_GUI_SCREENSHOT=path
    the window is saved there (docs/figures/gui.png is made so)."""
    import gnuradio.qtgui  # noqa: F401  (part of Debian gnuradio)

    script = compile_gui(tmp_path)
    runner = tmp_path / "run_gui.py"
    runner.write_text(GUI_RUNNER)
    args = [sys.executable, str(runner), str(script), "5"]
    if os.environ.get("ISAC_GUI_SCREENSHOT"):
        args.append(os.environ["ISAC_GUI_SCREENSHOT"])
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path), OPENBLAS_NUM_THREADS="1")
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "Traceback" not in out and "rror" not in out, out
    line = next(ln for ln in out.splitlines() if ln.startswith("MAPFRAME"))
    _, frame, _, truth, _, det = line.split()
    assert frame != "None" and int(frame) >= 0, out
    assert truth != "None" and det != "None", out
    white = int(next(ln for ln in out.splitlines() if ln.startswith("WHITE")).split()[1])
    if int(truth) > 0:
        assert white > 0, out
    xy = next(ln for ln in out.splitlines() if ln.startswith("XY ")).split()
    newest, rows, n_truth, n_det = (int(v) for v in xy[1:5])
    assert newest >= 0 and 1 <= rows <= 5, out
    assert (int(xy[6]) > 0) == (n_truth > 0) and (int(xy[8]) > 0) == (n_det > 0), out
    assert int(xy[10]) == 0, out  # nothing drawn at (0, 0)
    assert "SAMEFRAME 0" not in out, out


# --- frames of M > 1 OFDM symbols: the range-velocity map and the velocity arrows ------------------------
SPEEDS = (-30.0, 30.0)
SC_M = SC.with_overrides(
    {"ofdm.symbols": 16, "scene.speed_mps": list(SPEEDS), "array.antennas": 16, "ofdm.subcarriers": 64}
)
V = SC_M.doppler_points  # speeds of the range-velocity map
VELS = np.linspace(*SPEEDS, V)


def feed_m(display, maps, rv_maps):
    """Run (angle-delay, range-velocity) map pairs (frames 0, 1, ...) through the display's two inputs."""
    tb = gr.top_block()
    tb.connect(blocks.vector_source_f(np.concatenate([m.ravel() for m in maps]).tolist(), False, A * D), (display, 0))
    rv = blocks.vector_source_f(np.concatenate([m.ravel() for m in rv_maps]).tolist(), False, V * D)
    tb.connect(rv, (display, 1))
    tb.run()


def rv_map(peak, seed=0):
    """A range-velocity map in dB (V speeds x D delays, speed-major): noise around -20 dB, 0 dB at peak."""
    m = -20.0 + np.random.default_rng(seed).normal(0.0, 1.0, (V, D))
    m[peak] = 0.0
    return m.astype(np.float32)


def render_widget(display, widget, size=(480, 400)) -> np.ndarray:
    """Lay out the block's widget so that each picture is ``size``, refresh ``widget`` and grab it."""
    panel = display.qwidget()
    panel.resize(size[0] * panel.layout().count(), size[1])
    panel.layout().activate()
    assert (widget.width(), widget.height()) == size
    widget.refresh()
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    return (
        np.frombuffer(ptr, np.uint8)
        .reshape(img.height(), img.bytesPerLine())[:, : 3 * img.width()]
        .reshape(img.height(), img.width(), 3)
        .copy()
    )


def test_m_symbol_display_shows_the_range_velocity_map_of_the_frame_with_truth_and_detections(qapp):
    assert V > 2 and isac.speed_points(SC_M) == V
    d = make(scenario=SC_M)
    assert (d.speed_points, d.rv_size, d.speed_mps) == (V, V * D, list(SPEEDS))
    layout = d.qwidget().layout()
    assert [layout.itemAt(i).widget() for i in range(3)] == [d.xy_widget(), d.map_widget(), d.rv_widget()]
    peak = (V - 2, 12)  # speed index, delay index
    feed_m(d, [noise_map(seed=1), noise_map(seed=2)], [rv_map((1, 30), seed=1), rv_map(peak, seed=2)])
    rv = d.rv_widget()
    img = render_widget(d, rv)
    assert rv.frame == 1
    r = rv.plot_rect()
    mask = np.zeros(img.shape[:2], bool)
    mask[int(np.ceil(r.top())) + 1 : int(r.bottom()) - 1, int(np.ceil(r.left())) + 1 : int(r.right()) - 1] = True
    bright = np.where(mask, img[..., 0].astype(int) + img[..., 1], -1)
    y, x = np.unravel_index(np.argmax(bright), bright.shape)
    px, py = rv.to_pixel(VELS[peak[0]], RANGES[peak[1]])
    assert abs(x - px) <= r.width() / V and abs(y - py) <= r.height() / D, ((x, y), (px, py))
    assert tuple(img[y, x]) == tuple(LUT[255])
    # truth and detections of frame 1 at their (speed, range); frame 0's not at all
    truth = ([-30.0, -25.0], [RANGES[peak[1]], 60.0], [VELS[peak[0]], -20.0])
    det = ([-30.1], [RANGES[peak[1]] + 2.0], [VELS[peak[0]]])
    d.handle_truth(message(1, truth[0], truth[1], speed_mps=np.array(truth[2])))
    d.handle_detections(message(1, det[0], det[1], speed_mps=np.array(det[2])))
    d.handle_truth(message(0, [-35.0], [150.0], speed_mps=np.array([10.0])))
    img = render_widget(d, rv)
    for v, rg in zip(truth[2], truth[1]):
        assert colour_near(img, rv.to_pixel(v, rg), TRUTH_RGB) >= 12, (v, rg)
    assert colour_near(img, rv.to_pixel(det[2][0], det[1][0]), DETECTION_RGB) >= 12
    assert colour_near(img, rv.to_pixel(10.0, 150.0), TRUTH_RGB) == 0
    # the angle-delay picture of the same frame keeps its angles
    w = d.map_widget()
    img = render_widget(d, w)
    assert w.frame == 1 and colour_near(img, w.to_pixel(-25.0, 60.0), TRUTH_RGB) >= 12


def test_one_symbol_display_has_no_range_velocity_picture_and_ignores_its_second_input(qapp):
    d = make()
    assert d.rv_widget() is None and d.speed_points == 1 and d.qwidget().layout().count() == 2
    tb = gr.top_block()  # the range profile (1 x D) on in 1, as isac_gui.grc connects it: accepted
    tb.connect(blocks.vector_source_f(noise_map().ravel().tolist(), False, A * D), (d, 0))
    tb.connect(blocks.vector_source_f(np.zeros(D).tolist(), False, D), (d, 1))
    tb.run()
    render(d)
    assert d.map_widget().frame == 0 and len(d._rv_maps) == 0


def test_velocity_arrow_points_along_the_line_of_sight():
    from gnuradio.isac.display import arrow_scale, velocity_arrow

    p = (60.0, -80.0)  # 100 m away
    assert velocity_arrow(p, 20.0, 0.5) == pytest.approx((60.0 - 6.0, -80.0 + 8.0))  # approaching: 10 m inwards
    assert velocity_arrow(p, -20.0, 0.5) == pytest.approx((66.0, -88.0))  # receding: outwards
    assert velocity_arrow(p, 0.0, 0.5) is None and velocity_arrow(p, float("nan"), 0.5) is None
    assert velocity_arrow((0.0, 0.0), 5.0, 0.5) is None
    assert arrow_scale((0.0, 200.0, -150.0, 0.0), 40.0) == pytest.approx(0.5)  # 40 m/s: 20 m, a tenth of 200 m
    assert arrow_scale((-10.0, 50.0, -300.0, 0.0), 15.0) == pytest.approx(2.0)  # the larger side: y, 300 m
    # an approaching arrow longer than the range stops at the array; a receding one is not cut
    assert velocity_arrow((6.0, 8.0), 30.0, 0.5) == pytest.approx((0.0, 0.0))
    assert velocity_arrow((6.0, 8.0), -30.0, 0.5) == pytest.approx((15.0, 20.0))
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"arrow_scale: speed_mps must be finite and > 0 \(m/s\)"):
            arrow_scale((0.0, 200.0, -150.0, 0.0), bad)
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match=r"velocity_arrow: metres_per_mps must be finite and >= 0"):
            velocity_arrow(p, 20.0, bad)


def test_xy_scatter_draws_an_arrow_for_each_moving_target(qapp):
    """Truth moving towards the array: white arrow pixels between the circle and the tip towards
    the origin, none on the far side; a receding detection: red pixels outwards; a detection
    without a measured speed (NaN) and a static target: no arrow."""
    from gnuradio.isac.display import velocity_arrow

    d = make(scenario=SC_M)
    w = d.xy_widget()
    assert d.arrow_speed_mps == 30.0
    truth = ([-35.0, -25.0], [80.0, 150.0], [30.0, 0.0])
    det = ([-25.0, -35.0], [150.0, 80.0], [-30.0, float("nan")])
    d.handle_truth(message(3, truth[0], truth[1], speed_mps=np.array(truth[2])))
    d.handle_detections(message(3, det[0], det[1], speed_mps=np.array(det[2])))
    img = render_widget(d, w)
    scale = w.arrow_m_per_mps
    x0, x1, y0, y1 = w.extent
    assert 30.0 * scale == pytest.approx(0.1 * max(x1 - x0, y1 - y0))

    def along(start, tip, rgb, box=3):
        """Pixels of ``rgb`` near points 40-90 % of the way from start to tip (clear of the marker)."""
        return sum(
            colour_near(img, w.to_pixel(*(np.add(start, f * np.subtract(tip, start)))), rgb, box=box)
            for f in (0.5, 0.7, 0.9)
        )

    p_in = np.array(xy_of(truth[0][0], truth[1][0]))
    tip = velocity_arrow(p_in, 30.0, scale)
    assert np.hypot(*tip) < np.hypot(*p_in)  # towards the array
    assert along(p_in, tip, TRUTH_RGB) >= 3
    away = tuple(2 * p_in - np.array(tip))
    assert along(p_in, away, TRUTH_RGB) == 0
    p_out = np.array(xy_of(det[0][0], det[1][0]))
    tip = velocity_arrow(p_out, -30.0, scale)
    assert np.hypot(*tip) > np.hypot(*p_out) and along(p_out, tip, DETECTION_RGB) >= 3
    # the static truth target at (-25 deg, 150 m) and the detection without a speed at (-35, 80): no arrows
    for a, rg, rgb in ((-25.0, 150.0, TRUTH_RGB), (-35.0, 80.0, DETECTION_RGB)):
        p = np.array(xy_of(a, rg))
        for direction in (p / np.hypot(*p), -p / np.hypot(*p)):
            assert along(p + 3.0 * direction, p + 30.0 * scale * direction, rgb, box=1) == 0, (a, rg)
