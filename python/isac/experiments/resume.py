"""Resumable experiments: every finished unit of work (one sweep point of fig5 / fig6 / fig9,
one curve of fig7 / fig8, one SNR x method of crb) is written at once to its own small JSON
file under ``OUT/.partial/NAME/``; a rerun of the same command reads the finished units back
instead of recomputing them, so an interrupted run (Ctrl-C, a lost session, a killed job)
continues where it stopped and ends with the same CSV, plot and numbers, bit for bit, as an
uninterrupted one (frames are seeded per (run.seed, stream, index), so a unit's result does not
depend on which units ran before it).

A unit's file name is the SHA-256 of everything its result depends on: the experiment, the
unit's own key (method, eta, phi, SNR), the scenario hash (sizes, seed, every physical
setting), the kernel, the dOMP temperature, the content of any weights file, and a digest of
the installed module's code (its Python sources and compiled kernels), so a changed setting,
weights file or code version never reuses a stale result. ``--fresh`` ignores the store.

Units hold plain JSON (numbers, strings, lists, dicts; NaN written as the JSON extension
``NaN``, which Python reads back as float nan), never pickles, with the SHA-256 of their result's
JSON text: a unit file that is not such a record, holds another unit's key, a null result or a
result that does not match its digest (e.g. of another shape) is reported as damaged and computed
again, never handed to the experiment.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from functools import lru_cache
from typing import Any, Callable

#: bump when the meaning of a stored unit changes in a way the code digest would not catch
FORMAT = 2  # 2: units carry their result's digest


class DamagedUnit(ValueError):
    """A unit file that parses but is not a whole record of the unit asked for (the text says why)."""


def _result_text(result) -> str:
    return json.dumps(result, allow_nan=True, default=_jsonable)


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the relative paths and contents of the module's .py and compiled files."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".so")):
                path = os.path.join(dirpath, name)
                h.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def scenario_digest(scenario) -> str:
    """Hash of the WHOLE scenario, run section (frame counts, seed) included (Scenario.hash
    leaves ``run`` out: it identifies the physics that weights were trained for)."""
    return scenario.hash(tuple(scenario.to_dict()))


def file_digest(path: str | None) -> str | None:
    """SHA-256 of a file's content (None for None)."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(obj):
    """numpy scalars and arrays as plain numbers and lists (json.dump's ``default``)."""
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store a {type(obj).__name__} in an experiment unit")


class ResultStore:
    """Finished units of one experiment run, one JSON file each under ``folder``.

    ``common`` holds what every unit of the run depends on (experiment, kernel, temperature,
    ...); :meth:`unit` adds the unit's own key. ``enabled=False`` (``--fresh``) computes every
    unit again (and overwrites the stored ones)."""

    def __init__(self, folder: str, common: dict[str, Any], enabled: bool = True):
        self.folder = folder
        self.common = {"format": FORMAT, "code": code_digest(), **common}
        self.enabled = enabled
        self.reused = 0
        self.computed = 0
        self.damaged = 0  # unit files found damaged (each said on stderr, then recomputed)

    def _path(self, key: dict[str, Any], common: dict[str, Any] | None = None) -> str:
        common = self.common if common is None else common
        text = json.dumps({**common, **key}, sort_keys=True, allow_nan=True, default=_jsonable)
        return os.path.join(self.folder, hashlib.sha256(text.encode()).hexdigest()[:32] + ".json")

    def _stored_result(self, stored, path: str):
        """The result of a unit record read from ``path``; DamagedUnit unless it is whole."""
        if not isinstance(stored, dict) or not {"key", "common", "result", "digest"} <= stored.keys():
            raise DamagedUnit("not a unit record")
        if not isinstance(stored["key"], dict) or not isinstance(stored["common"], dict):
            raise DamagedUnit("not a unit record")
        if self._path(stored["key"], stored["common"]) != path:
            raise DamagedUnit("it holds another unit")
        if stored["result"] is None:
            raise DamagedUnit("its result is null")
        if hashlib.sha256(_result_text(stored["result"]).encode()).hexdigest() != stored["digest"]:
            raise DamagedUnit("its result does not match its digest")
        return stored["result"]

    def lookup(self, key: dict[str, Any]) -> tuple[bool, Any]:
        """(True, the stored result of unit ``key``) when the store holds it whole, else
        (False, None); a damaged unit file is said on stderr with the reason (it will be computed
        again)."""
        path = self._path(key)
        if not (self.enabled and os.path.isfile(path)):
            return False, None
        try:
            with open(path) as fh:
                result = self._stored_result(json.load(fh), path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # e.g. a full disk: compute it again
            self.damaged += 1
            why = str(exc) if isinstance(exc, DamagedUnit) else type(exc).__name__
            print(f"note: resume unit {path} is damaged ({why}); computing it again", file=sys.stderr)
            return False, None
        self.reused += 1
        return True, result

    def save(self, key: dict[str, Any], result: Any) -> None:
        """Store the result of unit ``key`` with the digest of its result (atomically: a unit file is
        whole or absent)."""
        path = self._path(key)
        os.makedirs(self.folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                digest = hashlib.sha256(_result_text(result).encode()).hexdigest()
                record = {"key": key, "common": self.common, "result": result, "digest": digest}
                json.dump(record, fh, allow_nan=True, default=_jsonable)
        except BaseException:
            os.unlink(tmp)
            raise
        from ..weights import file_mode

        os.chmod(tmp, file_mode())  # mkstemp makes 0600; give the mode open() would have
        os.replace(tmp, path)
        self.computed += 1

    def unit(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The stored result of unit ``key``, or ``compute()`` (then stored at once)."""
        found, result = self.lookup(key)
        if found:
            return result
        result = compute()
        self.save(key, result)
        return result

    def summary(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "units_reused": self.reused,
            "units_computed": self.computed,
            "enabled": self.enabled,
        }


__all__ = ["FORMAT", "DamagedUnit", "ResultStore", "code_digest", "file_digest", "scenario_digest"]
