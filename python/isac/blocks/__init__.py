"""GNU Radio blocks of gr-isac (Python, numpy): thin adapters around ``gnuradio.isac.model``.

Frames travel as vector items, one frame per item (layouts in docs/blocks.md):
array frames K*S complex64, antenna-major (item[k*S + s]); symbol, comm and CSI frames S
complex64; message frames S int32.

    isac_message_source     messages m and QPSK symbols x(m), as simulation.Simulator draws them
    isac_precoder           X = f x^T, f of (5)-(7) on the nominal array
    isac_ula_channel        sensing echo (1) and MISO channel (4) through the true ULA, with truth
    isac_reciprocal_filter  reciprocal filtering (3)
    isac_omp_receiver       OMP (Algorithm 1), detections as PMT dicts
    isac_angle_delay_map    the angle-delay map (Alg. 1, line 5) as a float stream, for display
    isac_map_display        QT GUI display of the map with truth and detections (PyQt5)
    isac_positions_pdu      truth / detections positions (2) as PDUs x + j y, for plotting
    isac_comm_receiver      ML detection (15)
    isac_json_publisher     messages as JSON on a ZeroMQ PUB socket (pyzmq)
    isac_metrics            running p_md, p_fa, GOSPA, SER
"""
from ._common import BlockParameterError
from .angle_delay_map import isac_angle_delay_map
from .comm_receiver import isac_comm_receiver
from .json_publisher import isac_json_publisher
from .map_display import isac_map_display
from .message_source import isac_message_source
from .metrics import isac_metrics
from .omp_receiver import isac_omp_receiver
from .positions_pdu import isac_positions_pdu
from .precoder import isac_precoder
from .reciprocal_filter import isac_reciprocal_filter
from .ula_channel import isac_ula_channel

__all__ = ["BlockParameterError", "isac_angle_delay_map", "isac_comm_receiver", "isac_json_publisher", "isac_map_display",
           "isac_message_source", "isac_metrics",
           "isac_omp_receiver", "isac_positions_pdu", "isac_precoder", "isac_reciprocal_filter", "isac_ula_channel"]
