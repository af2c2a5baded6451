"""GNU Radio blocks of gr-isac (Python): thin adapters (ports, tags, messages) on the model, the
kernels and the transceiver layer, each built from a scenario plus its own parameters. Users
reach them as ``from gnuradio import isac; isac.precoder(scenario, ...)``; base.py is what they
share (construction from a scenario, guarded work, the frame geometry tag, thread state).

Frames travel as vector items, one frame per item (model.geometry.FrameGeometry; layouts in
docs/blocks.md): array frames K*S complex64, antenna-major (item[k*S + s]); symbol, comm and CSI
frames S complex64; message frames S int32.

    message_source          messages m and QPSK symbols x(m), as simulation.Simulator draws them
    precoder                X = f x^T, f the precoder (5) of a method (transceiver layer)
    ula_channel             sensing echo (1) and MISO channel (4) through the true ULA, with truth
    reciprocal_filter       reciprocal filtering (3)
    omp_receiver            the sensing receiver of a method (OMP, dOMP or NNBL), detections as PMT dicts
    angle_delay_map_stream  the angle-delay map (Alg. 1, line 5) as a float stream, for display
    map_display             QT GUI display of the map with truth and detections (PyQt5)
    positions_pdu           truth / detections positions (2) as PDUs x + j y, for plotting
    comm_receiver           ML detection (15)
    json_publisher          messages as JSON on a ZeroMQ PUB socket (pyzmq)
    sigmf_sink              records Y_r (with truth) or x as a SigMF recording (recording.py)
    sigmf_source            plays a SigMF recording back: Y_r with truth, or x with its messages
    metrics                 running p_md, p_fa, GOSPA, SER
"""

from .. import _BLOCKS as _PACKAGE_BLOCKS
from .angle_delay_map_stream import angle_delay_map_stream
from .base import BlockParameterError
from .comm_receiver import comm_receiver
from .json_publisher import json_publisher
from .map_display import map_display
from .message_source import message_source
from .metrics import metrics
from .omp_receiver import omp_receiver
from .positions_pdu import positions_pdu
from .precoder import precoder
from .reciprocal_filter import reciprocal_filter
from .sigmf_sink import sigmf_sink
from .sigmf_source import sigmf_source
from .ula_channel import ula_channel

#: block name -> module of gnuradio.isac.blocks defining it: the table of gnuradio.isac's lazy
#: attributes (one table, in the package's __init__, which must not import GNU Radio)
BLOCKS = {name: module for name, module in _PACKAGE_BLOCKS.items() if name != "BlockParameterError"}

__all__ = [
    "BLOCKS",
    "BlockParameterError",
    "angle_delay_map_stream",
    "comm_receiver",
    "json_publisher",
    "map_display",
    "message_source",
    "metrics",
    "omp_receiver",
    "positions_pdu",
    "precoder",
    "reciprocal_filter",
    "sigmf_sink",
    "sigmf_source",
    "ula_channel",
]
assert set(__all__) == {"BLOCKS", "BlockParameterError", *BLOCKS}
