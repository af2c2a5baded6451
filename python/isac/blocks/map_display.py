"""isac.map_display: a live QT GUI picture of the angle-delay map (Fig. 3 of the paper) with
the true targets (circles) and the detections (crosses) of the frame shown, beside an x-y
scatter in metres (positions (2)) of the truth and detections of the last few frames and, for
frames of M > 1 OFDM symbols, the frame's range-velocity map (the pictures:
gnuradio.isac.display)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pmt
from gnuradio import gr

from .. import display
from ..messages import Detections, Truth, from_pmt
from ..model.geometry import FrameGeometry
from . import base
from .angle_delay_map_stream import DISPLAY_POINTS

NAME = "isac_map_display"
KEEP_FRAMES = 32  # maps and messages kept per kind (bounded; older ones are dropped)


class map_display(base.HeldThreadState, gr.sync_block):
    """Angle-delay maps of ``isac.angle_delay_map_stream`` in (in 0: float, vlen angles*delays of
    ``map_points``, angle-major, dB when ``db``), optionally its range-velocity maps (in 1: float,
    vlen speeds*delays, speed-major; the speeds: the scenario's receiver speed grid,
    ``speed_points`` = isac.speed_points(scenario)); messages ``truth`` (isac.ula_channel) and
    ``detections`` (isac.omp_receiver). ``qwidget()`` is a QWidget holding the pictures:

    - ``map_widget()``: one frame's map, dB re its maximum down to ``floor_db``, angle (deg) over
      the ``scenario``'s target sector on x, range (m) over its range interval on y, with circles at the frame's
      true targets and crosses at its detections (matched by frame number). Shown is the newest
      frame whose detections have arrived (the OMP receiver runs a frame or two behind the map),
      or the newest map if none of the last maps has detections yet.
    - ``xy_widget()`` (``xy_frames`` > 0): a scatter of the positions (2) x = R cos(theta),
      y = R sin(theta) in m (equal scales, the array at the origin) of the truth (circles) and the
      detections (crosses) of the last ``xy_frames`` frames up to the newest frame with
      detections, older frames faded. A frame without targets or detections draws nothing. A
      moving target (a truth speed other than 0, a measured detection speed) has an arrow along
      its line of sight, towards the array when it approaches: its radial velocity, the largest
      |v| of scene.speed_mps (else the unambiguous speed) a tenth of the picture's larger side.
    - ``rv_widget()`` (frames of M > 1 symbols; None for M = 1, whose in 1 is accepted and not
      shown): the same frame's range-velocity map, speed (m/s) over scene.speed_mps on x, range
      on y, truth and detections at their (speed, range).

    The pictures are refreshed at most ``update_hz`` times per second from the Qt thread
    (QTimers); the GNU Radio threads only store maps and messages under a lock.

    Needs a QApplication before construction (the QT GUI flowgraph creates it first)."""

    def __init__(
        self,
        scenario=None,
        map_points=DISPLAY_POINTS,
        db: bool = True,
        floor_db: float = -30.0,
        update_hz: float = 10.0,
        xy_frames: int = 5,
    ):
        sc = base.scenario_argument(NAME, scenario)
        self.angle_grid, self.delay_grid = base.parameter(NAME, "map_points", map_points)
        self.target_sector_deg = list(sc.scene["target_sector_deg"])
        self.range_m = list(sc.scene["range_m"])
        self.symbols = FrameGeometry.of(sc).symbols
        self.speed_mps = list(sc.speed_interval_mps)  # the range-velocity map's speeds: N_v over it
        self.speed_points = sc.doppler_points
        #: the speed of an arrow a tenth of the x-y picture's larger side (m/s)
        self.arrow_speed_mps = max(abs(v) for v in self.speed_mps) or sc.unambiguous_speed_mps
        if not isinstance(db, (bool, np.bool_)):
            raise base.error(NAME, "db", f"must be True or False, got {db!r}")
        self.db = bool(db)
        self._floor_db = self._check_floor(floor_db)
        self._update_hz = self._check_rate(update_hz)
        self._xy_frames = self._check_xy_frames(xy_frames)
        self.size = self.angle_grid * self.delay_grid
        self.rv_size = self.speed_points * self.delay_grid

        from PyQt5 import QtWidgets

        if QtWidgets.QApplication.instance() is None:
            raise RuntimeError(f"{NAME}: create the QApplication before the block (its widget needs one)")
        in_sig = gr.py_io_signature(1, 2, [(np.float32, self.size), (np.float32, self.rv_size)])  # in 1: optional
        gr.sync_block.__init__(self, name=NAME, in_sig=in_sig, out_sig=None)
        self._lock = threading.Lock()
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._rv_maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._truth: OrderedDict[int, dict] = OrderedDict()
        self._detections: OrderedDict[int, dict] = OrderedDict()
        self._version = 0  # bumped by every stored map or message
        self.message_port_register_in(pmt.intern("truth"))
        self.message_port_register_in(pmt.intern("detections"))
        self.set_msg_handler(pmt.intern("truth"), self.handle_truth)
        self.set_msg_handler(pmt.intern("detections"), self.handle_detections)
        self._map_widget = display.map_widget(self)
        self._xy_widget = display.xy_widget(self) if self._xy_frames else None
        self._rv_widget = display.rv_widget(self) if self.symbols > 1 else None
        self._map_widget.follower = self._rv_widget  # shows the map's frame, refreshed with it
        self._widget = display.panel(self._xy_widget, self._map_widget, self._rv_widget)

    # --- parameters ---------------------------------------------------------------------
    @staticmethod
    def _check_floor(value) -> float:
        return base.parameter(NAME, "floor_db", value)

    @staticmethod
    def _check_rate(value) -> float:
        return base.parameter(NAME, "update_hz", value)

    @staticmethod
    def _check_xy_frames(value) -> int:
        return base.parameter(NAME, "xy_frames", value)  # at most KEEP_FRAMES

    def set_xy_frames(self, xy_frames) -> None:
        """Frames in the x-y scatter (>= 1 when the block was built with a scatter); applies at
        the next refresh."""
        value = self._check_xy_frames(xy_frames)
        if self._xy_widget is not None and value == 0:
            raise base.error(NAME, "xy_frames", "must be >= 1 while the x-y scatter is shown")
        with self._lock:
            self._xy_frames = value
            self._version += 1

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
        """The display (a PyQt5 QWidget: the x-y scatter beside the map) for the flowgraph's layout."""
        return self._widget

    def map_widget(self):
        """The angle-delay map picture (inside ``qwidget()``)."""
        return self._map_widget

    def xy_widget(self):
        """The x-y scatter (inside ``qwidget()``), None when built with ``xy_frames=0``."""
        return self._xy_widget

    def rv_widget(self):
        """The range-velocity map picture (inside ``qwidget()``), None for frames of one symbol."""
        return self._rv_widget

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
        rv = input_items[1] if len(input_items) > 1 and self._rv_widget is not None else None
        with self._lock:
            for i in range(start, n):
                self._put(self._maps, first + i, np.array(x[i], dtype=np.float32))
                if rv is not None:
                    self._put(self._rv_maps, first + i, np.array(rv[i], dtype=np.float32))
            self._version += 1
        return n

    def _handle(self, store: OrderedDict, port: str, msg) -> None:
        try:
            d = from_pmt(msg)
            record = (Truth if port == "truth" else Detections).from_dict(d)
        except (ValueError, TypeError, KeyError) as exc:
            self.logger.warn(f"{port} message dropped: {exc!r}")
            return
        with self._lock:
            self._put(
                store,
                record.frame,
                {
                    "angle_deg": record.angle_deg,
                    "range_m": record.range_m,
                    "speed_mps": record.speed_mps,
                    "valid": record.valid,
                },
            )
            self._version += 1

    def handle_truth(self, msg) -> None:
        self._handle(self._truth, "truth", msg)

    def handle_detections(self, msg) -> None:
        self._handle(self._detections, "detections", msg)

    # --- Qt thread ----------------------------------------------------------------------
    def _frame_to_show(self, maps: OrderedDict):
        """The newest frame of ``maps`` whose detections have arrived, else the newest one (None
        when empty); under the lock."""
        frame = next((f for f in reversed(maps) if f in self._detections), None)
        if frame is None and maps:
            frame = next(reversed(maps))
        return frame

    def _snapshot(self, maps: OrderedDict, frame=None):
        with self._lock:
            if frame not in maps:
                frame = self._frame_to_show(maps)
            return (
                self._version,
                frame,
                maps.get(frame),
                self._truth.get(frame),
                self._detections.get(frame),
                self._floor_db,
                self._update_hz,
            )

    def snapshot(self):
        """(version, frame, map, truth, detections, floor_db, update_hz) of the frame to show
        (map None when no map has arrived), taken under the lock."""
        return self._snapshot(self._maps)

    def rv_snapshot(self, frame=None):
        """:meth:`snapshot` of the range-velocity maps: of ``frame`` (the frame the angle-delay
        picture shows) when its range-velocity map is stored, else chosen as :meth:`snapshot` chooses."""
        return self._snapshot(self._rv_maps, frame)

    def xy_snapshot(self):
        """(version, newest frame, [(frame, truth, detections), ...] oldest first, update_hz) of
        the x-y scatter, under the lock: the last ``xy_frames`` frames up to the newest frame
        with detections (the newest truth when no detections came); None entries for a missing
        message. Truth of frames newer than the newest detections is not included."""
        with self._lock:
            newest = max(self._detections) if self._detections else (max(self._truth) if self._truth else None)
            rows = []
            if newest is not None:
                for f in range(newest - self._xy_frames + 1, newest + 1):
                    t, d = self._truth.get(f), self._detections.get(f)
                    if t is not None or d is not None:
                        rows.append((f, t, d))
            return self._version, newest, rows, self._update_hz


__all__ = ["map_display"]
