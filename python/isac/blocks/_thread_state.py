"""One Python thread state per block thread, from the block's start() to its stop().

GNU Radio 3.10 calls a Python block's ``work``, its message handlers, ``start`` and ``stop``
from the block's own thread through pybind11's ``gil_scoped_acquire``. That thread was not
created by Python, so each call makes a new Python thread state and deletes it on return:
``PyThreadState_New`` / ``PyThreadState_Clear`` and a 16 KiB frame stack mapped and unmapped
(``mmap`` / ``munmap``, page faults) per call. In the metrics block (two message handlers per
frame) this was about a sixth of its thread's CPU time.

pybind11 keeps a thread state while its ``gilstate_counter`` stays above zero. A
``PyGILState_Ensure`` in ``start`` (GNU Radio calls it in the block's thread, before the first
``work``) raises the counter by one, so every later call on that thread reuses the state; the
matching ``PyGILState_Release`` in ``stop`` (same thread, after the last ``work``) lets pybind11
delete it as before. A ``stop`` on another thread than ``start`` (a block driven by hand)
releases nothing: that thread state is then reclaimed when the interpreter exits.
"""

from __future__ import annotations

import ctypes
import threading

_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.argtypes = []
_ensure.restype = ctypes.c_int
_release = ctypes.pythonapi.PyGILState_Release
_release.argtypes = [ctypes.c_int]
_release.restype = None


class HeldThreadState:
    """Mixin for the Python GNU Radio blocks (put it before ``gr.sync_block`` /
    ``gr.basic_block``): holds the block thread's Python thread state from ``start`` to ``stop``.
    A block that defines its own ``start`` / ``stop`` calls these (``super().start()``)."""

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
