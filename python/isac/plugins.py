"""Plug-ins: a Python module (or .py file) that registers its own method
(transceiver.register), sensing receiver (transceiver.register_receiver) or array impairment
model (model.impairments.register) when it is imported. The apps import them with
``--plugin MODULE`` (repeatable) before they read their other options, so a plug-in's names are
valid choices everywhere; a GRC flowgraph imports one with GNU Radio's Import block
(``import my_plugin``); Python code simply imports it."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

#: the plug-ins this process imported with :func:`load`, in order (a Dask runner has its workers
#: import them too: cluster.run_on_worker)
_LOADED: list[str] = []


def loaded() -> tuple[str, ...]:
    """The names given to :func:`load` in this process (paths made absolute), in order."""
    return tuple(_LOADED)


class PluginError(ImportError):
    """A plug-in could not be imported; the message names it and says why."""


def _spec(name: str) -> str:
    """A module name as given; a .py path made absolute (a worker in another folder finds it)."""
    text = str(name)
    return os.path.abspath(text) if text.endswith(".py") or os.sep in text else text


def load(name: str) -> ModuleType:
    """Import the plug-in ``name``: a module name (``my_lab.isac_receivers``) or the path of a
    .py file. Importing it twice runs it once. PluginError names it and says why it failed."""
    text = _spec(name)
    try:
        if text.endswith(".py") or os.sep in text:
            module = _import_file(text)
        else:
            module = importlib.import_module(text)
    except Exception as exc:  # noqa: BLE001 - any failure of the plug-in's own code, reported with its name
        raise PluginError(f"plug-in {text!r} could not be imported: {type(exc).__name__}: {exc}") from exc
    if text not in _LOADED:
        _LOADED.append(text)
    return module


def _import_file(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file {path!r}")
    key = "isac_plugin_" + os.path.splitext(os.path.basename(path))[0]
    real = os.path.realpath(path)
    loaded_module = sys.modules.get(key)
    if loaded_module is not None and os.path.realpath(getattr(loaded_module, "__file__", "")) == real:
        return loaded_module
    spec = importlib.util.spec_from_file_location(key, real)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module


__all__ = ["PluginError", "load", "loaded"]
