"""The transceiver layer: from (scenario, method, loaded weights) the transmitter (ISAC
precoder (5)) and the sensing receiver of every method, and the one way weights files are read
and validated. Blocks, apps, the offline evaluation, the experiments and the trainer build their
transceivers here and nowhere else.

    from gnuradio.isac import transceiver
    w = transceiver.load_weights("W.safetensors", scenario)      # read and validated once
    t = transceiver.build(scenario, w.method, w, receiver="domp")
    f = t.precoder(scenario)                                     # (K,) complex64
    result = t.receiver(y_tilde)                                 # OmpResult of Y~ (B, K, S)

Words used everywhere: **method** (registry.py, methods.py: baseline, perfect, impairment,
dictionary, nn, or one registered from outside), **receiver** (sensing.py: omp, domp, or one
registered; the estimator on the method's array), **kernel** (cpp, numpy: the implementation;
default cpp when the C++ kernels are built). ``stream.py`` runs a receiver on the frames of a
stream (rescaling, failures, worker threads). No GNU Radio here; torch only for method nn.
"""

from ..weights import Weights, WeightsError
from . import methods as _methods  # noqa: F401 (registers the methods of the paper)
from .methods import LearnedArrayMethod
from .registry import (
    REFERENCE_METHOD,
    ArrayTransmitter,
    Method,
    Transceiver,
    Transmitter,
    build,
    get,
    learned_methods,
    load_weights,
    methods,
    register,
    save_weights,
    sensing_receiver,
    transmitter,
    validate_weights,
)
from .sensing import KERNELS, Receiver, cpp_kernels_available, default_kernel, get_receiver, receivers
from .sensing import register as register_receiver

__all__ = [
    "ArrayTransmitter",
    "KERNELS",
    "LearnedArrayMethod",
    "Method",
    "REFERENCE_METHOD",
    "Receiver",
    "Transceiver",
    "Transmitter",
    "build",
    "cpp_kernels_available",
    "default_kernel",
    "get",
    "get_receiver",
    "learned_methods",
    "load_weights",
    "methods",
    "receivers",
    "register",
    "register_receiver",
    "save_weights",
    "sensing_receiver",
    "transmitter",
    "validate_weights",
    "Weights",
    "WeightsError",
]
