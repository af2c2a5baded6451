"""Qt pictures of the sensing: the angle-delay map of one frame (Fig. 3 of the paper) with the
true targets (circles) and the detections (crosses), for frames of M > 1 OFDM symbols its
range-velocity map beside it, and an x-y scatter in metres (positions (2)) of the truth and
detections of the last frames, moving targets with an arrow along the line of sight (their radial
velocity). The widgets draw what a source object gives them (isac.map_display: ``snapshot()``,
``rv_snapshot()``, ``xy_snapshot()``, its grids and sector); they are refreshed by QTimers in the
Qt thread and never touch GNU Radio. PyQt5 is imported on first use.
"""

from __future__ import annotations

import math

import numpy as np

from .model.scene import positions

# viridis at 9 equally spaced points (matplotlib's table), interpolated to 256 entries
_VIRIDIS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
LUT = (
    np.stack(
        [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_VIRIDIS)), _VIRIDIS[:, k]) for k in range(3)], axis=1
    )
    .round()
    .astype(np.uint8)
)
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


def xy_extent(target_sector_deg, range_m, margin: float = 0.05) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) in m of the x-y scatter: the sector's positions (2),
    p = R [cos theta, sin theta] for R in ``range_m`` and theta in ``target_sector_deg``, and
    the array at the origin, widened by ``margin`` of the larger side on every side."""
    (a0, a1), (r0, r1) = np.deg2rad(target_sector_deg), range_m
    angles = [a0, a1] + [a for a in (-np.pi / 2, 0.0, np.pi / 2) if a0 < a < a1]
    p = positions(np.array(angles)[:, None], np.array([r0, r1])[None, :]).reshape(-1, 2)
    p = np.vstack([p, [[0.0, 0.0]]])
    lo, hi = p.min(axis=0), p.max(axis=0)
    pad = margin * float(max(hi - lo))
    return float(lo[0] - pad), float(hi[0] + pad), float(lo[1] - pad), float(hi[1] + pad)


def velocity_arrow(position_m, speed_mps: float, metres_per_mps: float) -> tuple[float, float] | None:
    """The tip (x, y) in m of the arrow of a target at ``position_m`` (x, y, m) with radial speed
    ``speed_mps`` (m/s, positive = approaching): from the target along the line of sight, towards
    the array (the origin) when it approaches, away when it recedes, ``metres_per_mps`` (m per m/s,
    finite, >= 0) x |v| long; an approaching arrow stops at the array (never longer than the
    range). None for a static target, an unknown (non-finite) speed or a target at the origin."""
    if not (math.isfinite(metres_per_mps) and metres_per_mps >= 0.0):
        raise ValueError(f"velocity_arrow: metres_per_mps must be finite and >= 0 (m per m/s), got {metres_per_mps!r}")
    x, y = float(position_m[0]), float(position_m[1])
    r = math.hypot(x, y)
    if not math.isfinite(speed_mps) or speed_mps == 0.0 or r == 0.0:
        return None
    step = max(-speed_mps * metres_per_mps / r, -1.0)  # approaching (v > 0): towards the origin, at most to it
    return x + step * x, y + step * y


def arrow_scale(extent: tuple[float, float, float, float], speed_mps: float) -> float:
    """Metres of arrow per m/s in an x-y picture of ``extent`` (x_min, x_max, y_min, y_max in m):
    a target at ``speed_mps`` (m/s, finite and > 0: the fastest speed expected) draws an arrow a
    tenth of the picture's larger side."""
    if not (math.isfinite(speed_mps) and speed_mps > 0.0):
        raise ValueError(f"arrow_scale: speed_mps must be finite and > 0 (m/s), got {speed_mps!r}")
    x0, x1, y0, y1 = extent
    return 0.1 * max(x1 - x0, y1 - y0) / speed_mps


def fade(rgb, age: int, frames: int, background=(32, 32, 32)) -> tuple[int, int, int]:
    """Colour of a marker ``age`` frames older than the newest in a scatter of ``frames`` frames:
    ``rgb`` itself for the newest (age 0), else blended towards ``background``, 60 % of the way
    to ``rgb`` for the previous frame down to 24 % for the oldest."""
    weight = 1.0 if age == 0 else 0.6 * (1.0 - 0.6 * (age - 1) / max(frames - 2, 1))
    return tuple(int(round(b + (c - b) * weight)) for c, b in zip(rgb, background))


def _qt():
    from PyQt5 import QtCore, QtGui, QtWidgets

    return QtCore, QtGui, QtWidgets


_CLASSES: dict = {}


def _widget_class(name: str):
    """The Qt widget classes, built on first use (importing the blocks package does not import PyQt5)."""
    if not _CLASSES:
        live = _make_live_class()
        map_class = _make_widget_class(live)
        _CLASSES.update(map=map_class, rv=_make_rv_class(map_class), xy=_make_xy_class(live), panel=_make_panel_class())
    return _CLASSES[name]


def map_widget(block):
    """The map picture of ``block`` (isac.map_display)."""
    return _widget_class("map")(block)


def xy_widget(block):
    """The x-y scatter of ``block``."""
    return _widget_class("xy")(block)


def rv_widget(block):
    """The range-velocity map picture of ``block`` (frames of M > 1 symbols)."""
    return _widget_class("rv")(block)


def panel(xy, map_widget, rv=None):
    """The block's widget: the x-y scatter (if any) left of the map, and right of it the
    range-velocity map (if any)."""
    return _widget_class("panel")(xy, map_widget, rv)


def _make_live_class():
    QtCore, QtGui, QtWidgets = _qt()

    class LiveWidget(QtWidgets.QWidget):
        """What both pictures share: the block they show, a QTimer at the block's update rate
        calling ``refresh``, and ``refresh`` itself, which runs the subclass's ``_refresh`` and
        logs (once) instead of raising: PyQt5 aborts the program on an exception escaping a slot."""

        BACKGROUND = QtGui.QColor(32, 32, 32)
        TEXT = QtGui.QColor(215, 215, 215)
        WHAT = "display"  # names the picture in the error message

        def __init__(self, block, minimum: tuple[int, int]):
            super().__init__(None)
            self.block = block
            self.setMinimumSize(*minimum)
            self.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Expanding)
            self._drawn = None  # what was drawn last (set by _refresh)
            self._failed = False

        def _start_timer(self) -> None:
            self.timer = QtCore.QTimer(self)
            self.timer.timeout.connect(self.refresh)
            self._hz = None
            self._set_rate(self.block._update_hz)

        def _set_rate(self, hz: float) -> None:
            if hz != self._hz:
                self._hz = hz
                self.timer.start(max(1, int(round(1000.0 / hz))))

        def sizeHint(self):  # noqa: N802 (Qt name)
            return QtCore.QSize(640, 480)

        def refresh(self) -> None:
            """Take the newest frame(s) (QTimer slot; also callable directly) and repaint if they
            changed. An exception is logged, not raised (PyQt5 aborts on one escaping a slot)."""
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001
                if not self._failed:
                    self._failed = True
                    self.block.logger.error(f"{self.WHAT} refresh failed: {exc!r}")

    return LiveWidget


def _make_widget_class(live):
    QtCore, QtGui, QtWidgets = _qt()

    class MapWidget(live):
        """One frame's angle-delay map: angle (deg) on x, range (m) on y."""

        MARGINS = (58, 26, 76, 44)  # left, top, right, bottom (pixels)
        WHAT = "angle-delay map"
        X_LABEL = "angle (deg)"
        TITLE = ""  # before "frame f: ..."

        def __init__(self, block):
            super().__init__(block, (360, 280))
            self.follower = None  # a picture refreshed after this one (the range-velocity map)
            self.frame = None
            self.image = None  # QImage of the map shown
            self.truth = None
            self.detections = None
            self._bar = QtGui.QImage(
                np.ascontiguousarray(LUT[::-1, None, :].repeat(1, axis=1)).tobytes(),
                1,
                256,
                3,
                QtGui.QImage.Format_RGB888,
            ).copy()
            self._start_timer()

        # geometry ----------------------------------------------------------------------
        def plot_rect(self):
            left, top, right, bottom = self.MARGINS
            return QtCore.QRectF(left, top, max(1, self.width() - left - right), max(1, self.height() - top - bottom))

        def _extent(self, lo: float, hi: float, points: int) -> tuple[float, float]:
            cell = (hi - lo) / max(points - 1, 1) or 1.0  # grid points are cell centres; one point: 1 unit wide
            return lo - cell / 2, hi + cell / 2

        # what the picture shows: a subclass changes these ----------------------------------
        def x_axis(self) -> tuple[float, float, int]:
            """(first, last, points) of the grid on x."""
            b = self.block
            return b.target_sector_deg[0], b.target_sector_deg[1], b.angle_grid

        def marker_x(self, message: dict):
            """The x value of each target of a truth / detections message."""
            return message["angle_deg"]

        def take(self):
            """The block's snapshot of the frame to show."""
            return self.block.snapshot()

        def to_pixel(self, x_value: float, range_m: float) -> tuple[float, float]:
            """Widget coordinates (x, y) of an x value (angle in deg) and a range (m)."""
            b, r = self.block, self.plot_rect()
            a0, a1 = self._extent(*self.x_axis())
            r0, r1 = self._extent(*b.range_m, b.delay_grid)
            return (
                r.left() + (x_value - a0) / (a1 - a0) * r.width(),
                r.bottom() - (range_m - r0) / (r1 - r0) * r.height(),
            )

        # Qt thread: refresh() (LiveWidget) runs this ----------------------------------------
        def _refresh(self) -> None:
            version, frame, values, truth, detections, floor_db, hz = self.take()
            self._set_rate(hz)
            if values is None or self._drawn == (version, frame):
                return
            rgb = colour_image(values.reshape(self.x_axis()[2], self.block.delay_grid), self.block.db, floor_db)
            h, w = rgb.shape[:2]
            self.image = QtGui.QImage(rgb.tobytes(), w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()
            self.frame, self.truth, self.detections, self.floor_db = frame, truth, detections, floor_db
            self._drawn = (version, frame)
            self.update()
            if self.follower is not None:  # the range-velocity picture of the same frame
                self.follower.refresh()

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
                p.drawText(rect, QtCore.Qt.AlignCenter, f"{self.WHAT}: waiting for frames")
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
                for a, rg in zip(self.marker_x(self.truth), self.truth["range_m"]):
                    x, y = self.to_pixel(a, rg)
                    p.drawEllipse(QtCore.QPointF(x, y), radius, radius)
            if self.detections is not None:
                p.setPen(QtGui.QPen(QtGui.QColor(*DETECTION_RGB), 2))
                for a, rg in zip(self.marker_x(self.detections), self.detections["range_m"]):
                    if not math.isfinite(a):  # e.g. a speed that was not measured
                        continue
                    x, y = self.to_pixel(a, rg)
                    p.drawLine(QtCore.QPointF(x - radius, y - radius), QtCore.QPointF(x + radius, y + radius))
                    p.drawLine(QtCore.QPointF(x - radius, y + radius), QtCore.QPointF(x + radius, y - radius))
            p.restore()
            # frame, axes, ticks
            p.setPen(self.TEXT)
            p.setBrush(QtCore.Qt.NoBrush)
            p.drawRect(rect)
            x_lo, x_hi, _ = self.x_axis()
            span = (x_lo, x_hi) if x_hi > x_lo else self._extent(*self.x_axis())  # one point: its cell
            for t in nice_ticks(*span, count=max(2, int(rect.width() // 70))):
                x = self.to_pixel(t, b.range_m[0])[0]
                p.drawLine(QtCore.QPointF(x, rect.bottom()), QtCore.QPointF(x, rect.bottom() + 4))
                label = f"{t:g}"
                p.drawText(QtCore.QPointF(x - fm.horizontalAdvance(label) / 2, rect.bottom() + 6 + fm.ascent()), label)
            for t in nice_ticks(*b.range_m, count=max(2, int(rect.height() // 45))):
                y = self.to_pixel(x_lo, t)[1]
                p.drawLine(QtCore.QPointF(rect.left() - 4, y), QtCore.QPointF(rect.left(), y))
                label = f"{t:g}"
                p.drawText(
                    QtCore.QPointF(rect.left() - 6 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label
                )
            p.drawText(
                QtCore.QPointF(rect.center().x() - fm.horizontalAdvance(self.X_LABEL) / 2, self.height() - 4),
                self.X_LABEL,
            )
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
            title = f"{self.TITLE}frame {self.frame}: targets {nt}, detections {nd}"
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


def _make_rv_class(map_class):
    class RangeVelocityWidget(map_class):
        """One frame's range-velocity map (frames of M > 1 symbols): speed (m/s, positive =
        approaching) on x over the block's speed grid, range (m) on y; truth and detections at
        their (speed, range)."""

        WHAT = "range-velocity map"
        X_LABEL = "speed (m/s)"
        TITLE = "range-velocity, "

        def x_axis(self):
            b = self.block
            return b.speed_mps[0], b.speed_mps[1], b.speed_points

        def marker_x(self, message):
            return message["speed_mps"]

        def take(self):
            return self.block.rv_snapshot(self.block.map_widget().frame)  # the frame of the angle-delay map

    return RangeVelocityWidget


def _make_panel_class():
    _, _, QtWidgets = _qt()

    class Panel(QtWidgets.QWidget):
        """The x-y scatter, the map and the range-velocity map side by side, equal widths."""

        def __init__(self, xy, map_widget, rv=None):
            super().__init__(None)
            layout = QtWidgets.QHBoxLayout(self)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(0)
            for w in (xy, map_widget, rv):
                if w is not None:
                    layout.addWidget(w, 1)
            self.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Expanding)

    return Panel


def _make_xy_class(live):
    QtCore, QtGui, QtWidgets = _qt()

    class XYWidget(live):
        """Positions (2) in m of the last frames' truth (circles) and detections (crosses)."""

        MARGINS = (58, 26, 16, 44)  # left, top, right, bottom (pixels)
        WHAT = "x-y"
        GRID = QtGui.QColor(58, 58, 58)
        SECTOR = QtGui.QColor(110, 110, 110)
        RADIUS = 7.0

        def __init__(self, block):
            super().__init__(block, (320, 400))
            self.extent = xy_extent(block.target_sector_deg, block.range_m)
            #: metres of velocity arrow per m/s (the block's arrow_speed_mps: a tenth of the larger side)
            self.arrow_m_per_mps = arrow_scale(self.extent, block.arrow_speed_mps)
            self.newest = None  # newest frame drawn
            #: [(frame, truth positions (T, 2) or None, detection positions or None, truth speeds or
            #: None, detection speeds or None)]
            self.rows = []
            self.xy_frames = block._xy_frames
            self._start_timer()

        # geometry: equal metres per pixel on both axes -----------------------------------
        def plot_rect(self):
            left, top, right, bottom = self.MARGINS
            w, h = max(1, self.width() - left - right), max(1, self.height() - top - bottom)
            x0, x1, y0, y1 = self.extent
            scale = min(w / (x1 - x0), h / (y1 - y0))  # pixels per metre
            pw, ph = scale * (x1 - x0), scale * (y1 - y0)
            return QtCore.QRectF(left + (w - pw) / 2, top + (h - ph) / 2, pw, ph)

        def to_pixel(self, x_m: float, y_m: float) -> tuple[float, float]:
            """Widget coordinates of a position (x, y) in m (y up)."""
            r = self.plot_rect()
            x0, x1, y0, y1 = self.extent
            return (r.left() + (x_m - x0) / (x1 - x0) * r.width(), r.bottom() - (y_m - y0) / (y1 - y0) * r.height())

        # Qt thread: refresh() (LiveWidget) runs this ----------------------------------------
        @staticmethod
        def _positions(msg):
            if msg is None:
                return None
            return positions(np.deg2rad(msg["angle_deg"]), msg["range_m"]).reshape(-1, 2)  # (2)

        @staticmethod
        def _speeds(msg):
            return None if msg is None else np.asarray(msg.get("speed_mps", ()), dtype=np.float64).reshape(-1)

        def arrows(self, positions, speeds) -> list:
            """[(position, tip)] in m of the velocity arrows of targets at ``positions`` (T, 2) with
            radial ``speeds`` (T,): moving targets with a known speed only."""
            if positions is None or speeds is None or len(speeds) != len(positions):
                return []
            tips = [velocity_arrow(pos, float(v), self.arrow_m_per_mps) for pos, v in zip(positions, speeds)]
            return [(tuple(pos), tip) for pos, tip in zip(positions, tips) if tip is not None]

        def _refresh(self) -> None:
            version, newest, rows, hz = self.block.xy_snapshot()
            self._set_rate(hz)
            if self._drawn == (version, newest):
                return
            self.newest, self.xy_frames = newest, self.block._xy_frames
            self.rows = [
                (f, self._positions(t), self._positions(d), self._speeds(t), self._speeds(d)) for f, t, d in rows
            ]
            self._drawn = (version, newest)
            self.update()

        def _arrow(self, p, start, tip) -> None:
            """A velocity arrow from ``start`` to ``tip`` (m), with its head, in the current pen."""
            (x0, y0), (x1, y1) = self.to_pixel(*start), self.to_pixel(*tip)
            p.drawLine(QtCore.QPointF(x0, y0), QtCore.QPointF(x1, y1))
            length = math.hypot(x1 - x0, y1 - y0)
            if length < 1.0:
                return
            ux, uy = (x1 - x0) / length, (y1 - y0) / length
            head = min(6.0, 0.5 * length)
            for side in (-1.0, 1.0):  # two strokes back from the tip, 30 degrees off the shaft
                hx = x1 - head * (ux * 0.866 - side * uy * 0.5)
                hy = y1 - head * (uy * 0.866 + side * ux * 0.5)
                p.drawLine(QtCore.QPointF(x1, y1), QtCore.QPointF(hx, hy))

        def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
            p = QtGui.QPainter(self)
            p.fillRect(self.rect(), self.BACKGROUND)
            rect = self.plot_rect()
            b = self.block
            font = p.font()
            font.setPointSizeF(8.5)
            p.setFont(font)
            fm = QtGui.QFontMetricsF(font)
            x0, x1, y0, y1 = self.extent
            # grid and ticks (m)
            xt = nice_ticks(x0, x1, count=max(2, int(rect.width() // 70)))
            yt = nice_ticks(y0, y1, count=max(2, int(rect.height() // 45)))
            p.setPen(self.GRID)
            for t in xt:
                x = self.to_pixel(t, 0.0)[0]
                p.drawLine(QtCore.QPointF(x, rect.top()), QtCore.QPointF(x, rect.bottom()))
            for t in yt:
                y = self.to_pixel(0.0, t)[1]
                p.drawLine(QtCore.QPointF(rect.left(), y), QtCore.QPointF(rect.right(), y))
            # the sector of the targets: R in range_m, theta in target_sector_deg
            p.setPen(QtGui.QPen(self.SECTOR, 1, QtCore.Qt.DashLine))
            (a0, a1), (r0, r1) = b.target_sector_deg, b.range_m
            for a in (a0, a1):
                (u0, v0), (u1, v1) = positions(np.deg2rad([a, a]), [r0, r1])
                p.drawLine(QtCore.QPointF(*self.to_pixel(u0, v0)), QtCore.QPointF(*self.to_pixel(u1, v1)))
            for r in (r0, r1):
                arc = positions(np.deg2rad(np.linspace(a0, a1, 48)), np.full(48, r))
                p.drawPolyline(QtGui.QPolygonF([QtCore.QPointF(*self.to_pixel(u, v)) for u, v in arc]))
            # markers, oldest first so that the newest frame is drawn on top, clipped to the plot
            p.save()
            p.setClipRect(rect)
            p.setRenderHint(QtGui.QPainter.Antialiasing, False)
            p.setBrush(QtCore.Qt.NoBrush)
            rad = self.RADIUS
            for f, truth, det, truth_v, det_v in self.rows:
                age = self.newest - f
                width = 2 if age == 0 else 1.5
                if truth is not None:
                    p.setPen(QtGui.QPen(QtGui.QColor(*fade(TRUTH_RGB, age, self.xy_frames)), width))
                    for u, v in truth:
                        p.drawEllipse(QtCore.QPointF(*self.to_pixel(u, v)), rad, rad)
                    for start, tip in self.arrows(truth, truth_v):
                        self._arrow(p, start, tip)
                if det is not None:
                    p.setPen(QtGui.QPen(QtGui.QColor(*fade(DETECTION_RGB, age, self.xy_frames)), width))
                    for start, tip in self.arrows(det, det_v):
                        self._arrow(p, start, tip)
                    for u, v in det:
                        x, y = self.to_pixel(u, v)
                        p.drawLine(QtCore.QPointF(x - rad, y - rad), QtCore.QPointF(x + rad, y + rad))
                        p.drawLine(QtCore.QPointF(x - rad, y + rad), QtCore.QPointF(x + rad, y - rad))
            p.restore()
            # frame, tick labels, axis labels
            p.setPen(self.TEXT)
            p.setBrush(QtCore.Qt.NoBrush)
            p.drawRect(rect)
            for t in xt:
                x = self.to_pixel(t, 0.0)[0]
                label = f"{t:g}"
                p.drawText(QtCore.QPointF(x - fm.horizontalAdvance(label) / 2, rect.bottom() + 6 + fm.ascent()), label)
            for t in yt:
                y = self.to_pixel(0.0, t)[1]
                label = f"{t:g}"
                p.drawText(
                    QtCore.QPointF(rect.left() - 6 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label
                )
            p.drawText(
                QtCore.QPointF(rect.center().x() - fm.horizontalAdvance("x (m)") / 2, self.height() - 4), "x (m)"
            )
            p.save()
            p.translate(12, rect.center().y() + fm.horizontalAdvance("y (m)") / 2)
            p.rotate(-90)
            p.drawText(QtCore.QPointF(0, 0), "y (m)")
            p.restore()
            # title: the frames shown and the newest frame's counts
            if self.newest is None:
                title = "x-y: waiting for truth / detections"
            else:
                last = next((r for r in self.rows if r[0] == self.newest), (None, None, None))
                nt = "?" if last[1] is None else len(last[1])
                nd = "?" if last[2] is None else len(last[2])
                first = self.rows[0][0] if self.rows else self.newest
                title = f"x-y, frames {first}-{self.newest}: targets {nt}, detections {nd}"
            p.drawText(QtCore.QPointF(self.MARGINS[0], fm.ascent() + 4), title)
            p.end()

    return XYWidget


__all__ = [
    "DETECTION_RGB",
    "LUT",
    "TRUTH_RGB",
    "arrow_scale",
    "colour_image",
    "fade",
    "map_widget",
    "nice_ticks",
    "panel",
    "rv_widget",
    "velocity_arrow",
    "xy_extent",
    "xy_widget",
]
