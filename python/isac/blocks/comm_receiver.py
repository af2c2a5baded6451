"""isac.comm_receiver: subcarrier-wise ML detection (15) with CSI."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from ..model.ofdm import ml_detect
from ..transceiver.stream import MIN_AMPLITUDE, power_of_two_scales
from . import base

NAME = "isac_comm_receiver"
INVALID_TAG = "invalid_comm"
#: largest max |Re|, |Im| of a subcarrier's y_c and kappa detected unscaled: |y - kappa x|^2 <= 8 a^2
#: then stays far inside the float32 range (2^123 against 2^128); larger (and tiny) subcarriers are
#: rescaled by a power of two, which leaves the ML decision (15) exactly as it is
MAX_AMPLITUDE = 2.0**60


def rescaled_pairs(y: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y and kappa with each subcarrier's pair divided by one power of two (transceiver.stream's
    power_of_two_scales of their joint amplitude) when it lies outside [MIN_AMPLITUDE,
    MAX_AMPLITUDE]: exact, and argmin_x |y - kappa x|^2 is the same. Copies when any is scaled."""
    parts = np.stack([y.view(np.float32).reshape(*y.shape, 2), kappa.view(np.float32).reshape(*kappa.shape, 2)])
    amplitudes = np.abs(parts).max(axis=(0, -1)).reshape(-1)
    scales = power_of_two_scales(amplitudes, MAX_AMPLITUDE, MIN_AMPLITUDE)
    if np.all(scales == 1.0):
        return y, kappa
    exponents = (1 - np.frexp(scales)[1]).reshape(y.shape)  # 2^-e with 2^e the scale
    return tuple(
        np.ldexp(a.view(np.float32).reshape(*a.shape, 2), exponents[..., None])
        .reshape(-1)
        .view(np.complex64)
        .reshape(a.shape)
        for a in (y, kappa)
    )


class comm_receiver(base.FrameBlock, gr.sync_block):
    """In 0: received comm frames y_c, in 1: CSI frames kappa; out: detected message frames
    (int32 in {0..3}) by ``model.ofdm.ml_detect``. A subcarrier whose |y_c| or |kappa| lies outside
    the single-precision range of the distances (above MAX_AMPLITUDE, below 2^-40) is detected on a
    power-of-two rescaled copy (exact: the decision does not change), so huge or tiny frames get the
    messages of the frame at the usual scale. Frames that cannot be detected, with NaN/Inf in y_c or
    kappa or kappa = 0 on a subcarrier (no CSI: every message is as likely), are counted in
    ``invalid_frames``, logged and tagged ``invalid_comm`` (the metrics block does not score them;
    such subcarriers are detected as message 0, as ml_detect does). A frame whose detection raises
    is handled the same way (all messages 0, tagged, counted in ``failed_frames``, logged)."""

    NAME = NAME

    def __init__(self, scenario=None):
        self.setup(scenario)
        self.invalid_frames = 0
        n = self.geometry.symbol_items
        gr.sync_block.__init__(self, name=NAME, in_sig=[(np.complex64, n), (np.complex64, n)], out_sig=[(np.int32, n)])
        self.buffer_frames((0,), base.SYMBOL_FRAMES)

    def work_frames(self, input_items, output_items):
        n = len(input_items[0])
        read = self.nitems_read(0)
        y, kappa, out = input_items[0][:n], input_items[1][:n], output_items[0]
        nonfinite = ~(np.isfinite(y) & np.isfinite(kappa)).all(axis=1)
        no_csi = (kappa == 0).any(axis=1)
        bad = nonfinite | no_csi

        def batch():
            out[:n] = ml_detect(*rescaled_pairs(y, kappa))

        def one(i):
            out[i] = ml_detect(*rescaled_pairs(y[i : i + 1], kappa[i : i + 1]))[0]

        def failed(i):
            out[i] = 0
            bad[i] = True

        self.per_frame(read, n, one, failed, batch)
        for i in np.nonzero(bad)[0]:
            self.invalid_frames += 1
            why = (
                "non-finite y_c or CSI" if nonfinite[i] else "CSI kappa = 0 on a subcarrier" if no_csi[i] else "failed"
            )
            self.logger.warn(
                f"frame {read + int(i)}: {why}: flagged invalid, not scored ({self.invalid_frames} such frames so far)"
            )
            self.add_item_tag(0, self.nitems_written(0) + int(i), pmt.intern(INVALID_TAG), pmt.PMT_T)
        return n
