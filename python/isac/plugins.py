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


class PluginError(ImportError):
    """A plug-in could not be imported; the message names it and says why."""


def load(name: str) -> ModuleType:
    """Import the plug-in ``name``: a module name (``my_lab.isac_receivers``) or the path of a
    .py file. Importing it twice runs it once."""
    text = str(name)
    try:
        if text.endswith(".py") or os.sep in text:
            if not os.path.isfile(text):
                raise FileNotFoundError(f"no such file {text!r}")
            key = "isac_plugin_" + os.path.splitext(os.path.basename(text))[0]
            path = os.path.realpath(text)
            loaded = sys.modules.get(key)
            if loaded is not None and os.path.realpath(getattr(loaded, "__file__", "")) == path:
                return loaded
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[key]
                raise
            return module
        return importlib.import_module(text)
    except Exception as exc:  # noqa: BLE001 - any failure of the plug-in's own code, reported with its name
        raise PluginError(f"plug-in {text!r} could not be imported: {type(exc).__name__}: {exc}") from exc


__all__ = ["PluginError", "load"]
