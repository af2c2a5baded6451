#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-isac: end-to-end learned multi-target ISAC for GNU Radio.

Importing ``gnuradio.isac`` loads only the compiled C++ kernels (module
``isac_python``: ``angle_delay_map``, ``angle_delay_map_complex``, ``map_argmax``,
``omp`` / ``OmpKernel``, ``domp`` / ``DompKernel``). The numpy model, trainer and command-line tools are
subpackages imported on demand, e.g. ``from gnuradio.isac.model import ...``.

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
    __path__.append(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "bindings"))
    try:
        from .isac_python import *  # noqa: F401,F403
        _BINDING_ERROR = None
    except ImportError:
        pass

_KERNELS = ("angle_delay_map", "angle_delay_map_complex", "map_argmax", "omp", "domp", "OmpKernel", "DompKernel",
            "angle_dictionary_is_symmetric", "delay_dictionary_is_uniform_dft")


def __getattr__(name):
    if name in _KERNELS and _BINDING_ERROR is not None:
        raise ImportError(
            f"gnuradio.isac.{name} needs the compiled module isac_python, "
            f"which failed to load: {_BINDING_ERROR}")
    raise AttributeError(f"module 'gnuradio.isac' has no attribute {name!r}")
