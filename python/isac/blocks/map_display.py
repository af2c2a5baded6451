"""isac.map_display: a live QT GUI picture of the angle-delay map (Fig. 3 of the paper) with
the true targets (circles) and the OMP detections (crosses) of the frame shown."""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import pmt
from gnuradio import gr

from . import _common as c

NAME = "isac_map_display"
KEEP_FRAMES = 32  # maps and messages kept per kind (bounded; older ones are dropped)

# viridis at 9 equally spaced points (matplotlib's table), interpolated to 256 entries
_VIRIDIS = np.array([(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                     (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], dtype=np.float64)
LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_VIRIDIS)), _VIRIDIS[:, k])
                for k in range(3)], axis=1).round().astype(np.uint8)
TRUTH_RGB = (255, 255, 255)  # circles
DETECTION_RGB = (255, 0, 0)  # crosses


def colour_image(values: np.ndarray, db: bool, floor_db: float) -> np.ndarray:
    """RGB picture (delay_grid, angle_grid, 3) uint8 of one map (angle_grid, delay_grid):
    dB re the frame's maximum, clipped at ``floor_db`` (< 0), viridis; row 0 is the largest
    range (image top), column i is angle i. Non-finite entries are drawn at the floor."""
    v = np.asarray(values, dtype=np.float64)
    if not db:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = 10.0 * np.log10(np.maximum(v, 1e-30))
    finite = np.isfinite(v)
    top = v[finite].max() if finite.any() else 0.0
    rel = np.where(finite, v - top, floor_db)
    idx = np.clip(np.round((rel - floor_db) / -floor_db * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(LUT[idx.T[::-1]])


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps 1, 2, 5 x 10^k) inside [lo, hi]."""
    span = hi - lo
    raw = span / max(count, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _vector(message: dict, key: str) -> np.ndarray:
    return np.atleast_1d(np.asarray(message.get(key, []), dtype=np.float64)).reshape(-1)


class map_display(gr.sync_block):
    """Angle-delay maps of ``isac.angle_delay_map_stream`` in (float, vlen angle_grid*delay_grid,
    angle-major, dB when ``db``); messages ``truth`` (isac.ula_channel) and ``detections``
    (isac.omp_receiver). ``qwidget()`` is a QWidget showing one frame's map, dB re its maximum
    down to ``floor_db``, angle (deg) over ``target_sector_deg`` on x, range (m) over ``range_m`` on y,
    with circles at the frame's true targets and crosses at its detections (matched by frame
    number). The picture is refreshed at most ``update_hz`` times per second from the Qt thread
    (QTimer); the GNU Radio threads only store maps and messages under a lock. Shown is the
    newest frame whose detections have arrived (the OMP receiver runs a frame or two behind the
    map), or the newest map if none of the last maps has detections yet.

    Needs a QApplication before construction (the QT GUI flowgraph creates it first)."""

    def __init__(self, angle_grid: int = 180, delay_grid: int = 100, target_sector_deg=(-40.0, -20.0),
                 range_m=(10.0, 190.0), db: bool = True, floor_db: float = -30.0, update_hz: float = 10.0):
        self.angle_grid = c.positive_int(NAME, "angle_grid", angle_grid)
        self.delay_grid = c.positive_int(NAME, "delay_grid", delay_grid)
        self.target_sector_deg = c.interval(NAME, "target_sector_deg", target_sector_deg, " (degrees)")
        self.range_m = c.interval(NAME, "range_m", range_m, " (m)")
        c.scenario(NAME, dict(target_sector_deg=self.target_sector_deg, range_m=self.range_m,
                              angle_grid=self.angle_grid, delay_grid=self.delay_grid))
        if not isinstance(db, (bool, np.bool_)):
            raise c.error(NAME, "db", f"must be True or False, got {db!r}")
        self.db = bool(db)
        self._floor_db = self._check_floor(floor_db)
        self._update_hz = self._check_rate(update_hz)
        self.size = self.angle_grid * self.delay_grid

        from PyQt5 import QtWidgets

        if QtWidgets.QApplication.instance() is None:
            raise RuntimeError(f"{NAME}: create the QApplication before the block (its widget needs one)")
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.float32, self.size)], out_sig=None)
        self._lock = threading.Lock()
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._truth: OrderedDict[int, dict] = OrderedDict()
        self._detections: OrderedDict[int, dict] = OrderedDict()
        self._version = 0  # bumped by every stored map or message
        self.message_port_register_in(pmt.intern("truth"))
        self.message_port_register_in(pmt.intern("detections"))
        self.set_msg_handler(pmt.intern("truth"), self.handle_truth)
        self.set_msg_handler(pmt.intern("detections"), self.handle_detections)
        self._widget = _MapWidget(self)

    # --- parameters ---------------------------------------------------------------------
    @staticmethod
    def _check_floor(value) -> float:
        value = c.number(NAME, "floor_db", value)
        if value >= 0:
            raise c.error(NAME, "floor_db", f"must be < 0 (dB re the frame maximum), got {value}")
        return value

    @staticmethod
    def _check_rate(value) -> float:
        return c.number(NAME, "update_hz", value, minimum=0.0, strict=True)

    def set_floor_db(self, floor_db) -> None:
        """Lowest dB (re the frame maximum) shown; applies at the next refresh."""
        value = self._check_floor(floor_db)
        with self._lock:
            self._floor_db = value
            self._version += 1

    def set_update_hz(self, update_hz) -> None:
        """Refresh rate limit (1/s); applies at the next refresh."""
        value = self._check_rate(update_hz)
        with self._lock:
            self._update_hz = value

    def qwidget(self):
        """The display (a PyQt5 QWidget) for the flowgraph's layout."""
        return self._widget

    # --- GNU Radio threads: store only --------------------------------------------------
    @staticmethod
    def _put(store: OrderedDict, frame: int, value) -> None:
        store[frame] = value
        store.move_to_end(frame)
        while len(store) > KEEP_FRAMES:
            store.popitem(last=False)

    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        first = self.nitems_read(0)
        start = max(0, n - KEEP_FRAMES)
        with self._lock:
            for i in range(start, n):
                self._put(self._maps, first + i, np.array(x[i], dtype=np.float32))
            self._version += 1
        return n

    def _handle(self, store: OrderedDict, port: str, msg) -> None:
        try:
            d = c.to_python(msg)
            frame = int(d["frame"])
            angles, ranges = _vector(d, "angle_deg"), _vector(d, "range_m")
            if angles.shape != ranges.shape:
                raise ValueError(f"angle_deg and range_m differ in length: {angles.size} vs {ranges.size}")
        except (ValueError, TypeError, KeyError) as exc:
            self.logger.warn(f"{port} message dropped: {exc!r}")
            return
        with self._lock:
            self._put(store, frame, {"angle_deg": angles, "range_m": ranges, "valid": bool(d.get("valid", True))})
            self._version += 1

    def handle_truth(self, msg) -> None:
        self._handle(self._truth, "truth", msg)

    def handle_detections(self, msg) -> None:
        self._handle(self._detections, "detections", msg)

    # --- Qt thread ----------------------------------------------------------------------
    def snapshot(self):
        """(version, frame, map, truth, detections, floor_db, update_hz) of the frame to show
        (map None when no map has arrived), taken under the lock."""
        with self._lock:
            frame = next((f for f in reversed(self._maps) if f in self._detections), None)
            if frame is None and self._maps:
                frame = next(reversed(self._maps))
            return (self._version, frame, self._maps.get(frame), self._truth.get(frame),
                    self._detections.get(frame), self._floor_db, self._update_hz)


def _qt():
    from PyQt5 import QtCore, QtGui, QtWidgets

    return QtCore, QtGui, QtWidgets


_MAP_WIDGET_CLASS = None


def _MapWidget(block: "map_display"):
    """The display widget (class built on first use, so that importing the blocks package
    does not import PyQt5)."""
    global _MAP_WIDGET_CLASS
    if _MAP_WIDGET_CLASS is None:
        _MAP_WIDGET_CLASS = _make_widget_class()
    return _MAP_WIDGET_CLASS(block)


def _make_widget_class():
    QtCore, QtGui, QtWidgets = _qt()

    class MapWidget(QtWidgets.QWidget):
        MARGINS = (58, 26, 76, 44)  # left, top, right, bottom (pixels)
        BACKGROUND = QtGui.QColor(32, 32, 32)
        TEXT = QtGui.QColor(215, 215, 215)

        def __init__(self, block: "map_display"):
            super().__init__(None)
            self.block = block
            self.setMinimumSize(360, 280)
            self.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Expanding)
            self.frame = None
            self.image = None  # QImage of the map shown
            self.truth = None
            self.detections = None
            self._drawn = None  # (version, frame) last drawn
            self._failed = False
            self._bar = QtGui.QImage(np.ascontiguousarray(LUT[::-1, None, :].repeat(1, axis=1)).tobytes(),
                                     1, 256, 3, QtGui.QImage.Format_RGB888).copy()
            self.timer = QtCore.QTimer(self)
            self.timer.timeout.connect(self.refresh)
            self._hz = None
            self._set_rate(block._update_hz)

        def _set_rate(self, hz: float) -> None:
            if hz != self._hz:
                self._hz = hz
                self.timer.start(max(1, int(round(1000.0 / hz))))

        # geometry ----------------------------------------------------------------------
        def plot_rect(self):
            left, top, right, bottom = self.MARGINS
            return QtCore.QRectF(left, top, max(1, self.width() - left - right),
                                 max(1, self.height() - top - bottom))

        def _extent(self, lo: float, hi: float, points: int) -> tuple[float, float]:
            cell = (hi - lo) / max(points - 1, 1)  # grid points are cell centres
            return lo - cell / 2, hi + cell / 2

        def to_pixel(self, angle_deg: float, range_m: float) -> tuple[float, float]:
            """Widget coordinates (x, y) of an angle (deg) and a range (m)."""
            b, r = self.block, self.plot_rect()
            a0, a1 = self._extent(*b.target_sector_deg, b.angle_grid)
            r0, r1 = self._extent(*b.range_m, b.delay_grid)
            return (r.left() + (angle_deg - a0) / (a1 - a0) * r.width(),
                    r.bottom() - (range_m - r0) / (r1 - r0) * r.height())

        # Qt thread ---------------------------------------------------------------------
        def refresh(self) -> None:
            """Take the newest frame (QTimer slot; also callable directly) and repaint if it changed.
            An exception is logged, not raised: PyQt5 aborts the program on one escaping a slot."""
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001
                if not self._failed:
                    self._failed = True
                    self.block.logger.error(f"display refresh failed: {exc!r}")

        def _refresh(self) -> None:
            version, frame, values, truth, detections, floor_db, hz = self.block.snapshot()
            self._set_rate(hz)
            if values is None or self._drawn == (version, frame):
                return
            rgb = colour_image(values.reshape(self.block.angle_grid, self.block.delay_grid), self.block.db, floor_db)
            h, w = rgb.shape[:2]
            self.image = QtGui.QImage(rgb.tobytes(), w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()
            self.frame, self.truth, self.detections, self.floor_db = frame, truth, detections, floor_db
            self._drawn = (version, frame)
            self.update()

        def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
            p = QtGui.QPainter(self)
            p.fillRect(self.rect(), self.BACKGROUND)
            rect = self.plot_rect()
            b = self.block
            p.setPen(self.TEXT)
            font = p.font()
            font.setPointSizeF(8.5)
            p.setFont(font)
            fm = QtGui.QFontMetricsF(font)
            if self.image is None:
                p.drawText(rect, QtCore.Qt.AlignCenter, "angle-delay map: waiting for frames")
                p.end()
                return
            p.drawImage(rect, self.image)
            # markers, clipped to the map
            p.save()
            p.setClipRect(rect)
            p.setRenderHint(QtGui.QPainter.Antialiasing, False)
            radius = 7.0
            if self.truth is not None:
                p.setPen(QtGui.QPen(QtGui.QColor(*TRUTH_RGB), 2))
                p.setBrush(QtCore.Qt.NoBrush)
                for a, rg in zip(self.truth["angle_deg"], self.truth["range_m"]):
                    x, y = self.to_pixel(a, rg)
                    p.drawEllipse(QtCore.QPointF(x, y), radius, radius)
            if self.detections is not None:
                p.setPen(QtGui.QPen(QtGui.QColor(*DETECTION_RGB), 2))
                for a, rg in zip(self.detections["angle_deg"], self.detections["range_m"]):
                    x, y = self.to_pixel(a, rg)
                    p.drawLine(QtCore.QPointF(x - radius, y - radius), QtCore.QPointF(x + radius, y + radius))
                    p.drawLine(QtCore.QPointF(x - radius, y + radius), QtCore.QPointF(x + radius, y - radius))
            p.restore()
            # frame, axes, ticks
            p.setPen(self.TEXT)
            p.setBrush(QtCore.Qt.NoBrush)
            p.drawRect(rect)
            for t in nice_ticks(*b.target_sector_deg, count=max(2, int(rect.width() // 70))):
                x = self.to_pixel(t, b.range_m[0])[0]
                p.drawLine(QtCore.QPointF(x, rect.bottom()), QtCore.QPointF(x, rect.bottom() + 4))
                label = f"{t:g}"
                p.drawText(QtCore.QPointF(x - fm.horizontalAdvance(label) / 2, rect.bottom() + 6 + fm.ascent()), label)
            for t in nice_ticks(*b.range_m, count=max(2, int(rect.height() // 45))):
                y = self.to_pixel(b.target_sector_deg[0], t)[1]
                p.drawLine(QtCore.QPointF(rect.left() - 4, y), QtCore.QPointF(rect.left(), y))
                label = f"{t:g}"
                p.drawText(QtCore.QPointF(rect.left() - 6 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1),
                           label)
            p.drawText(QtCore.QPointF(rect.center().x() - fm.horizontalAdvance("angle (deg)") / 2,
                                      self.height() - 4), "angle (deg)")
            p.save()
            p.translate(12, rect.center().y() + fm.horizontalAdvance("range (m)") / 2)
            p.rotate(-90)
            p.drawText(QtCore.QPointF(0, 0), "range (m)")
            p.restore()
            # colour bar
            bar = QtCore.QRectF(rect.right() + 12, rect.top(), 12, rect.height())
            p.drawImage(bar, self._bar)
            p.drawRect(bar)
            p.drawText(QtCore.QPointF(bar.right() + 4, bar.top() + fm.ascent()), "0 dB")
            p.drawText(QtCore.QPointF(bar.right() + 4, bar.bottom()), f"{self.floor_db:g} dB")
            # title and legend
            nt = 0 if self.truth is None else len(self.truth["angle_deg"])
            nd = "?" if self.detections is None else len(self.detections["angle_deg"])
            title = f"frame {self.frame}: targets {nt}, detections {nd}"
            p.drawText(QtCore.QPointF(rect.left(), fm.ascent() + 4), title)
            x = max(rect.right() - 130, rect.left() + fm.horizontalAdvance(title) + 16)
            y = fm.ascent() + 4
            p.setPen(QtGui.QPen(QtGui.QColor(*TRUTH_RGB), 1.5))
            p.drawEllipse(QtCore.QPointF(x, y - fm.ascent() / 3), 4, 4)
            p.setPen(self.TEXT)
            p.drawText(QtCore.QPointF(x + 8, y), "truth")
            x += 16 + fm.horizontalAdvance("truth")
            p.setPen(QtGui.QPen(QtGui.QColor(*DETECTION_RGB), 1.5))
            cy = y - fm.ascent() / 3
            p.drawLine(QtCore.QPointF(x - 4, cy - 4), QtCore.QPointF(x + 4, cy + 4))
            p.drawLine(QtCore.QPointF(x - 4, cy + 4), QtCore.QPointF(x + 4, cy - 4))
            p.setPen(self.TEXT)
            p.drawText(QtCore.QPointF(x + 8, y), "detections")
            p.end()

    return MapWidget


__all__ = ["map_display", "colour_image", "nice_ticks"]
