#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-isac: end-to-end learned multi-target ISAC for GNU Radio.

    from gnuradio import isac
    scenario = isac.Scenario.load("my.toml")        # or None: the paper's (Sec. V-A)
    src = isac.message_source(scenario)
    tx = isac.precoder(scenario, method="baseline")
    rx = isac.omp_receiver(scenario, receiver="domp")

The blocks (``isac.precoder``, ``isac.ula_channel``, ``isac.reciprocal_filter``,
``isac.omp_receiver``, ``isac.comm_receiver``, ``isac.metrics``, ``isac.message_source``,
``isac.angle_delay_map_stream``, ``isac.map_display``, ``isac.positions_pdu``,
``isac.json_publisher``, ``isac.sigmf_sink``, ``isac.sigmf_source``) are lazy attributes:
importing ``gnuradio.isac`` loads only the compiled C++ kernels (module ``isac_python``:
``angle_delay_map``, ``angle_delay_map_complex``, ``map_argmax``, ``omp`` / ``OmpKernel``,
``domp`` / ``DompKernel``, and for frames of M OFDM symbols ``angle_delay_doppler_map``,
``angle_delay_doppler_map_complex``, ``OmpDopplerKernel``); the first use of a block
imports GNU Radio's runtime and the block. The numpy model, the transceiver layer, the trainer
and the command-line tools are subpackages imported on demand, e.g.
``from gnuradio.isac.model import ...``.

If the compiled module cannot be loaded (a Python-only checkout), the package
still imports; using a kernel then raises ImportError with the reason.
"""

import os as _os

_BINDING_ERROR = None
try:
    from .isac_python import *  # noqa: F401,F403
except ImportError as exc:
    _BINDING_ERROR = exc

if _BINDING_ERROR is not None:
    # Build-tree fallback, as in the GNU Radio template: the extension may sit
    # in bindings/ next to this file.
    _bindings = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "bindings")
    __path__.append(_bindings)  # noqa: F405 (the package's own path, not a star import)
    try:
        from .isac_python import *  # noqa: F401,F403

        _BINDING_ERROR = None
    except ImportError:
        pass

_KERNELS = (
    "angle_delay_map",
    "angle_delay_map_complex",
    "map_argmax",
    "omp",
    "domp",
    "OmpKernel",
    "DompKernel",
    "angle_delay_doppler_map",
    "angle_delay_doppler_map_complex",
    "OmpDopplerKernel",
    "angle_dictionary_is_symmetric",
    "delay_dictionary_is_uniform_dft",
)


#: block name -> module in gnuradio.isac.blocks: the one table of blocks (blocks.BLOCKS is derived from it)
_BLOCKS = {
    "angle_delay_map_stream": "angle_delay_map_stream",
    "comm_receiver": "comm_receiver",
    "json_publisher": "json_publisher",
    "map_display": "map_display",
    "message_source": "message_source",
    "metrics": "metrics",
    "omp_receiver": "omp_receiver",
    "positions_pdu": "positions_pdu",
    "precoder": "precoder",
    "reciprocal_filter": "reciprocal_filter",
    "ula_channel": "ula_channel",
    "sigmf_sink": "sigmf_sink",
    "sigmf_source": "sigmf_source",
    "BlockParameterError": "base",
}

#: other lazy attributes: name -> (module, attribute); none imports GNU Radio
_LAZY = {
    "Scenario": ("config", "Scenario"),
    "FrameGeometry": ("model.geometry", "FrameGeometry"),
    "frame_geometry": ("config_grc", "frame_geometry"),
    "speed_points": ("config_grc", "speed_points"),
    "scenario_of_fields": ("config_grc", "scenario_of_fields"),
    "learned_methods": ("transceiver", "learned_methods"),
    "stop_on_fatal": ("blocks.base", "stop_on_fatal"),
}


def __getattr__(name):
    if name in _BLOCKS or name in _LAZY:
        import importlib

        module, attr = (f"blocks.{_BLOCKS[name]}", name) if name in _BLOCKS else _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _KERNELS and _BINDING_ERROR is not None:
        raise ImportError(
            f"gnuradio.isac.{name} needs the compiled module isac_python, which failed to load: {_BINDING_ERROR}"
        )
    raise AttributeError(f"module 'gnuradio.isac' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_BLOCKS) | set(_LAZY))
