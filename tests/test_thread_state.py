"""blocks.base.HeldThreadState: a Python block keeps one Python thread state for its
GNU Radio thread from start() to stop(), instead of a new one per work() / message call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio.isac.blocks.base import HeldThreadState


class Counter:
    """Counts the fresh Python thread states seen by work(): a threading.local lives in the
    thread state, so it is empty in each new one."""

    def setup(self):
        self.local = threading.local()
        self.calls = self.fresh = 0
        self.threads = set()

    def note(self):
        self.calls += 1
        self.threads.add(threading.get_native_id())
        if not getattr(self.local, "seen", False):
            self.fresh += 1
            self.local.seen = True


class plain_sink(gr.sync_block, Counter):
    def __init__(self):
        gr.sync_block.__init__(self, name="plain_sink", in_sig=[np.float32], out_sig=None)
        self.setup()

    def work(self, input_items, output_items):
        self.note()
        return min(len(input_items[0]), 64)  # many small calls


class held_sink(HeldThreadState, gr.sync_block, Counter):
    def __init__(self):
        gr.sync_block.__init__(self, name="held_sink", in_sig=[np.float32], out_sig=None)
        self.setup()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self.handle)
        self.messages = 0

    def handle(self, msg):
        self.messages += 1
        self.note()

    def work(self, input_items, output_items):
        self.note()
        return min(len(input_items[0]), 64)


def run(sink, items=20000):
    tb = gr.top_block()
    tb.connect(blocks.vector_source_f([0.0] * items), sink)
    tb.run()
    return sink


def test_without_the_mixin_each_call_gets_a_new_thread_state():
    """The cost the mixin removes: pybind11 makes a thread state per call from a GNU Radio thread."""
    s = run(plain_sink())
    assert s.calls >= 50 and len(s.threads) == 1
    assert s.fresh == s.calls


def test_the_mixin_keeps_one_thread_state_for_work_and_messages():
    s = held_sink()
    tb = gr.top_block()
    # an endless stream: the sink's thread (and its message handling) lives until tb.stop(); a
    # finite one could end before the strobe's first messages arrive, and the loop would wait
    # forever for them
    src = blocks.null_source(gr.sizeof_float)
    strobe = blocks.message_strobe(pmt.intern("x"), 1)
    tb.connect(src, s)
    tb.msg_connect(strobe, "strobe", s, "in")
    tb.start()
    deadline = time.monotonic() + 60.0
    while (s.calls < 50 or s.messages < 5) and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    tb.stop()
    tb.wait()
    assert s.messages >= 5, f"only {s.messages} strobe messages handled in 60 s"
    assert s.calls >= 50 and len(s.threads) == 1
    assert s.fresh == 1
    assert not s.holds_thread_state  # released in stop()


def test_start_and_stop_by_hand_balance():
    s = held_sink()
    for _ in range(3):
        assert s.start() is True
        assert s.holds_thread_state
        assert s.start() is True  # a second start holds nothing more
        assert s.stop() is True
        assert not s.holds_thread_state
    assert s.stop() is True  # stop without start: nothing to release
