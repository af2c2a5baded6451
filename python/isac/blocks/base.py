"""The base of every gr-isac block: construction from a scenario, guarded ``work`` (a frame that
fails is flagged, counted and logged, and the stream goes on; a block that cannot go on stops
the flowgraph with one line naming it), the ``frame_shape`` tag that lets blocks check that
their frames have the same geometry, one Python thread state per block thread, and the stream
buffer sizes. A block's own module is only its adapter: ports, tags and messages."""

from __future__ import annotations

import ctypes
import math
import numbers
import threading

from ..config import ConfigError, Scenario
from ..config_schema import BLOCK_PARAMETER_RANGES
from ..model.geometry import FrameGeometry, GeometryError

#: consecutive failed frames after which a block gives up (the failure is not per frame)
MAX_CONSECUTIVE_FAILURES = 32
#: frames an array-frame output buffer holds at least: the next block then gets 8-32 frames per
#: work call instead of 1-2 (GNU Radio's default buffers hold a couple of 128 kB frames)
STREAM_FRAMES = 32
#: frames a symbol-frame output buffer (messages, symbols, y_c, CSI) holds at least: the comm
#: side may run ahead of the metrics block, which consumes frames only once they are sensed
SYMBOL_FRAMES = 128
#: stream tag on item 0 of an array-frame output: PMT dict {K, S, M, block}
SHAPE_TAG = "frame_shape"


class BlockParameterError(ValueError):
    """A block constructor parameter is invalid; the message names block and parameter."""


class GiveUp(Exception):
    """A block cannot go on (e.g. every frame failing): it stops the flowgraph with this text."""


def error(block: str, param: str, message: str) -> BlockParameterError:
    return BlockParameterError(f"{block}: parameter '{param}' {message}")


def integer(block: str, param: str, value, minimum: int = 1, what: str = "") -> int:
    """``value`` as an int >= ``minimum``; else BlockParameterError naming the parameter."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or float(value) != int(value)
        or int(value) < minimum
    ):
        raise error(block, param, f"must be an integer >= {minimum}{what}, got {value!r}")
    return int(value)


def number(block: str, param: str, value, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a finite float (> or >= ``minimum``); else BlockParameterError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(block, param, f"must be a finite number, got {value!r}")
    value = float(value)
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise error(block, param, f"must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


def parameter(block: str, param: str, value):
    """``value`` of the numeric parameter ``param`` of ``block``, checked against its range in
    config_schema.BLOCK_PARAMETER_RANGES (the range the block's GRC asserts are generated from): an int, a
    float, a tuple of two ints ("pair") or a list of floats ("floats"); else BlockParameterError
    naming the block, the parameter and the range."""
    spec = BLOCK_PARAMETER_RANGES[(block, param)]
    problem = spec.violation(value)
    if problem:
        raise error(block, param, problem)
    if spec.kind == "int":
        return int(value)
    if spec.kind == "float":
        return float(value)
    if spec.kind == "pair":
        return tuple(int(v) for v in value)
    return [float(v) for v in value]


def choice(block: str, param: str, value, choices) -> str:
    if value not in tuple(choices):
        raise error(block, param, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def scenario_argument(block: str, scenario) -> Scenario:
    """A block's ``scenario`` argument as a Scenario: a Scenario (e.g. the value of GRC's ISAC
    Scenario block), a TOML file path, or None / "" for the paper's default (Sec. V-A)."""
    try:
        return Scenario.of(scenario)
    except (ConfigError, OSError) as exc:
        raise error(block, "scenario", f"({scenario!r}): {exc}") from None


def stop_on_fatal(top_block):
    """An ``on_fatal`` handler for a block of a flowgraph that has none of its own (GRC's
    generated flowgraphs: the metrics block's template sets it): stop ``top_block`` (from another
    thread: the caller is a block thread that stop() interrupts) and make the program exit with
    status 1 instead of 0 once it ends, so a script or CI sees the failure."""

    def handler(block, message: str) -> None:
        import atexit
        import os
        import sys

        def exit_status() -> None:  # runs first at exit (atexit is last in, first out)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

        atexit.register(exit_status)
        threading.Thread(target=top_block.stop, name="isac_fatal_stop", daemon=True).start()

    return handler


# --- one Python thread state per block thread ---------------------------------------------------
# GNU Radio 3.10 calls a Python block's work, message handlers, start and stop from the block's own
# thread through pybind11's gil_scoped_acquire. That thread was not made by Python, so each call
# would create a Python thread state and delete it on return (PyThreadState_New / Clear and a
# 16 KiB frame stack mapped and unmapped per call: in the metrics block, two message handlers per
# frame, about a sixth of its thread's CPU). pybind11 keeps a thread state while its
# gilstate_counter stays above zero: a PyGILState_Ensure in start (the block's thread, before the
# first work) makes every later call reuse it; the PyGILState_Release in stop (same thread, after
# the last work) lets it go. A stop on another thread (a block driven by hand) releases nothing.
_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.argtypes = []
_ensure.restype = ctypes.c_int
_release = ctypes.pythonapi.PyGILState_Release
_release.argtypes = [ctypes.c_int]
_release.restype = None


class HeldThreadState:
    """Mixin of every Python block (before ``gr.sync_block`` / ``gr.basic_block``): holds its
    thread's Python thread state from ``start`` to ``stop``; subclasses call ``super().start()``."""

    _held_thread_state: tuple[int, int] | None = None

    def start(self) -> bool:
        if self._held_thread_state is None:
            self._held_thread_state = (threading.get_ident(), _ensure())
        return True

    def stop(self) -> bool:
        held, self._held_thread_state = self._held_thread_state, None
        if held is not None and held[0] == threading.get_ident():
            _release(held[1])
        return True

    @property
    def holds_thread_state(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._held_thread_state is not None


# --- frame blocks ------------------------------------------------------------------------------
class FrameBlock(HeldThreadState):
    """Base of the blocks that stream frames (put it before ``gr.sync_block``).

    ``setup(name, scenario)`` in the constructor gives the block its ``scenario`` (a Scenario, a
    TOML path, or None for the paper's default) and ``geometry`` (model.geometry.FrameGeometry).
    The subclass implements ``work_frames(input_items, output_items)`` instead of ``work``:

    - a frame whose computation raises is handled by :meth:`per_frame` (flagged by the caller's
      ``on_failure``, counted in ``failed_frames``, logged: the first 10, then every 100th);
      MAX_CONSECUTIVE_FAILURES in a row raise GiveUp;
    - GiveUp, or any other exception out of ``work_frames``, stops the flowgraph: the message (naming
      the block) is logged and kept in ``fatal_error``, ``on_fatal(block, message)`` is called when
      set (isac-sim's flowgraph stops and raises it), and ``work`` returns WORK_DONE, which GNU
      Radio passes on to the blocks downstream and, as their buffers fill, upstream;
    - :meth:`array_input` checks, on the first work call, the ``frame_shape`` tag that the
      upstream block put on its first frame (blocks of another geometry with the same vector
      length connect in GNU Radio: the tag names both); :meth:`tag_geometry` puts that tag."""

    NAME = "isac_block"

    def setup(self, scenario) -> None:
        self.scenario = scenario_argument(self.NAME, scenario)
        self.geometry = FrameGeometry.of(self.scenario)
        self.failed_frames = 0
        self._consecutive_failures = 0
        self.fatal_error: str | None = None
        #: optional handler(block, message) of a failure that stops the flowgraph (flowgraph.SimFlowgraph)
        self.on_fatal = None

    # --- work ---------------------------------------------------------------------------
    def work_frames(self, input_items, output_items) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def work(self, input_items, output_items):
        if self.fatal_error is not None:  # given up outside work (e.g. the metrics block's stream watch)
            return -1
        try:
            return self.work_frames(input_items, output_items)
        except GiveUp as exc:
            return self.stop_flowgraph(str(exc))
        except Exception as exc:  # noqa: BLE001 - not a frame's failure: the block cannot go on
            return self.stop_flowgraph(f"{self.alias()}: {type(exc).__name__}: {exc}")

    def stop_flowgraph(self, message: str) -> int:
        """A failure the block cannot survive: log ``message``, keep it in ``fatal_error``, call
        ``on_fatal``; returns WORK_DONE (-1) for ``work``."""
        if self.fatal_error is None:
            self.fatal_error = message
            self.logger.error(message)
            if self.on_fatal is not None:
                self.on_fatal(self, message)
        return -1

    # --- per-frame failures -------------------------------------------------------------------
    def frame_failed(self, frame: int, exc: BaseException) -> None:
        """Count and log the failure of stream frame ``frame``; GiveUp after too many in a row."""
        self.failed_frames += 1
        self._consecutive_failures += 1
        if self.failed_frames <= 10 or self.failed_frames % 100 == 0:
            self.logger.error(
                f"frame {frame}: {type(exc).__name__}: {exc} -- frame flagged invalid, "
                f"going on ({self.failed_frames} failed frames so far)"
            )
        if self._consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            raise GiveUp(
                f"{self.alias()}: {self._consecutive_failures} frames in a row failed, last: "
                f"{type(exc).__name__}: {exc}"
            )

    def frame_ok(self) -> None:
        self._consecutive_failures = 0

    def per_frame(self, first: int, n: int, one, on_failure, batch=None) -> None:
        """Run ``batch()`` on the n frames of a work call (when given); if it raises (or without
        it), ``one(i)`` frame by frame, and ``on_failure(i)`` (flag frame i invalid) for each frame
        that raises, counted and logged as stream frame ``first + i``."""
        if batch is not None:
            try:
                batch()
                self.frame_ok()
                return
            except Exception:  # noqa: BLE001 - isolate the failing frames
                pass
        for i in range(n):
            try:
                one(i)
                self.frame_ok()
            except Exception as exc:  # noqa: BLE001
                on_failure(i)
                self.frame_failed(first + i, exc)

    # --- frame geometry ------------------------------------------------------------------------
    def array_input(self, items, port: int = 0, n: int | None = None):
        """The first ``n`` items of array-frame input ``port`` as frames (n, *array_shape); on the
        first work call GiveUp when the upstream ``frame_shape`` tag gives another geometry."""
        n = len(items) if n is None else n
        if self.nitems_read(port) == 0:
            problem = self.geometry_mismatch(port, n)
            if problem:
                raise GiveUp(problem)
        return self.geometry.array_frames(items, n)

    def geometry_mismatch(self, port: int, n: int) -> str | None:
        """The error text when a ``frame_shape`` tag on items [0, n) of input ``port`` gives
        another geometry than this block's (None when they agree or there is no tag)."""
        import pmt

        from ..messages import MessageError, from_pmt

        senders = []
        for tag in self.get_tags_in_window(port, 0, max(1, n), pmt.intern(SHAPE_TAG)):
            try:
                d = from_pmt(tag.value)
                other, who = FrameGeometry.from_dict(d), str(d.get("block", "?"))
            except (MessageError, GeometryError):
                continue
            if other != self.geometry:
                senders.append(f"{who} ({other.describe()})")
        if not senders:
            return None
        return (
            f"{self.alias()}: input frames come from {', '.join(senders)}, but this block has "
            f"{self.geometry.describe()}: the frames have the same length, so GNU Radio connected them; "
            f"give both blocks the same scenario"
        )

    def tag_geometry(self, port: int = 0) -> None:
        """Tag item 0 of output ``port`` with this block's frame geometry and name (on the first
        work call only)."""
        if self.nitems_written(port) == 0:
            import pmt

            from ..messages import to_pmt

            value = to_pmt({**self.geometry.to_dict(), "block": self.alias()})
            self.add_item_tag(port, 0, pmt.intern(SHAPE_TAG), value)

    def buffer_frames(self, ports, frames: int = STREAM_FRAMES) -> None:
        """Let output ``ports`` buffer at least ``frames`` frames (items)."""
        for port in ports:
            self.set_min_output_buffer(port, int(frames))


__all__ = [
    "BlockParameterError",
    "FrameBlock",
    "GiveUp",
    "HeldThreadState",
    "MAX_CONSECUTIVE_FAILURES",
    "SHAPE_TAG",
    "STREAM_FRAMES",
    "SYMBOL_FRAMES",
    "choice",
    "error",
    "integer",
    "number",
    "parameter",
    "scenario_argument",
    "stop_on_fatal",
]
