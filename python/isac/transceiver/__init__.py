"""The transceiver layer: from (scenario, method, loaded weights) the transmitter (ISAC
precoder (5)) and the sensing receiver of every method. Blocks, apps, the offline evaluation and
the experiments build their transceivers here and nowhere else.

    from gnuradio.isac import transceiver, weights
    w = weights.load("W.safetensors", scenario)                 # read and validated once
    t = transceiver.build(scenario, w.method, w, receiver="domp")
    f = t.precoder(scenario)                                    # (K,) complex64
    result = t.receiver(y_tilde)                                # OmpResult of Y~ (B, K, S)

Words used everywhere: **method** (baseline, perfect, impairment, dictionary, nn), **receiver**
(omp, domp: the estimator on the method's array), **kernel** (cpp, numpy: the implementation;
default cpp when the C++ kernels are built). No GNU Radio here; torch only for method nn.
"""

from .registry import (
    ArrayTransmitter,
    Method,
    NnTransmitter,
    Transceiver,
    Transmitter,
    build,
    get,
    learned_methods,
    methods,
    register,
    sensing_receiver,
    transmitter,
)
from .sensing import KERNELS, RECEIVERS, SensingReceiver, cpp_kernels_available, default_kernel

#: the registered methods, and those that need a weights file (at import time; see methods())
METHODS = methods()
LEARNED = learned_methods()

__all__ = [
    "ArrayTransmitter",
    "KERNELS",
    "LEARNED",
    "METHODS",
    "Method",
    "NnTransmitter",
    "RECEIVERS",
    "SensingReceiver",
    "Transceiver",
    "Transmitter",
    "build",
    "cpp_kernels_available",
    "default_kernel",
    "get",
    "learned_methods",
    "methods",
    "register",
    "sensing_receiver",
    "transmitter",
]
