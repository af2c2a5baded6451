"""The frame geometry: how many antennas K, subcarriers S and OFDM symbols M one frame holds,
and how a frame lies in memory, in a stream item, a stream tag and a recording.

Every part of gr-isac that touches a frame asks this object instead of assuming K x S:

  received / transmitted array frames   Y_r, Y~, X of (1), (3), (5): ``array_shape``
                                         (K, S) for one OFDM symbol (the paper's frame, Sec. II-A),
                                         (M, K, S) for M symbols; antenna-major within a symbol:
                                         element [k, s] is antenna k, subcarrier s
  symbol frames                          messages m, QPSK symbols x(m), y_c and kappa of (4):
                                         ``symbol_shape`` (S,), or (M, S) for M symbols
  stream items                           one frame per vector item: ``array_items`` = M K S,
                                         ``symbol_items`` = M S complex (or int32) values

The paper's frame is one OFDM symbol (M = 1); its arrays keep their 2-D shape (K, S), so
every formula of Secs. II-IV reads as printed. Standard library only (GRC evaluates
``array_items`` when it sizes a block's ports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


class GeometryError(ValueError):
    """A frame or a description of one does not fit the geometry; the message says how."""


@dataclass(frozen=True)
class FrameGeometry:
    """K antennas, S subcarriers, M OFDM symbols per frame (all >= 1)."""

    antennas: int
    subcarriers: int
    symbols: int = 1

    def __post_init__(self) -> None:
        for name in ("antennas", "subcarriers", "symbols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GeometryError(f"frame geometry: {name} must be an integer >= 1, got {value!r}")

    @classmethod
    def of(cls, scenario) -> "FrameGeometry":
        """The geometry of a scenario's frames: K = array.antennas, S = ofdm.subcarriers and
        M = ofdm.symbols (1: the paper's frame)."""
        return cls(
            int(scenario.get("array.antennas")),
            int(scenario.get("ofdm.subcarriers")),
            int(scenario.get("ofdm.symbols")),
        )

    # --- shapes ---------------------------------------------------------------------------
    @property
    def array_shape(self) -> tuple[int, ...]:
        """Shape of one array frame (Y_r, Y~, X): (K, S), or (M, K, S) for M > 1 symbols."""
        K, S, M = self.antennas, self.subcarriers, self.symbols
        return (K, S) if M == 1 else (M, K, S)

    @property
    def symbol_shape(self) -> tuple[int, ...]:
        """Shape of one symbol frame (m, x, y_c, kappa): (S,), or (M, S) for M > 1 symbols."""
        return (self.subcarriers,) if self.symbols == 1 else (self.symbols, self.subcarriers)

    @property
    def array_items(self) -> int:
        """Values of one array frame: the vector length of an array-frame stream, M K S."""
        return self.symbols * self.antennas * self.subcarriers

    @property
    def symbol_items(self) -> int:
        """Values of one symbol frame: the vector length of a symbol-frame stream, M S."""
        return self.symbols * self.subcarriers

    @property
    def array_bytes(self) -> int:
        """Bytes of one complex64 array frame (8 M K S)."""
        return 8 * self.array_items

    def describe(self) -> str:
        """'K = 64, S = 256' (and ', M = 16' for multi-symbol frames), for messages."""
        text = f"K = {self.antennas}, S = {self.subcarriers}"
        return text if self.symbols == 1 else f"{text}, M = {self.symbols}"

    # --- frames in memory -------------------------------------------------------------------
    def array_frames(self, items, count: int | None = None):
        """The first ``count`` (default: all) stream items of an array-frame stream, (n, M K S),
        as frames (n, *array_shape): a view, no copy."""
        n = len(items) if count is None else int(count)
        return items[:n].reshape((n,) + self.array_shape)

    def symbol_frames(self, items, count: int | None = None):
        """The first ``count`` items of a symbol-frame stream as frames (n, *symbol_shape): a view."""
        n = len(items) if count is None else int(count)
        return items[:n].reshape((n,) + self.symbol_shape)

    def check_array(self, frames, who: str = "frames"):
        """``frames`` (B, *array_shape) or one frame (*array_shape); GeometryError naming ``who``
        and both shapes otherwise. Returns ``frames``."""
        shape = tuple(getattr(frames, "shape", ()))
        if shape[-len(self.array_shape) :] != self.array_shape or len(shape) > len(self.array_shape) + 1:
            raise GeometryError(
                f"{who}: expected array frames of shape (B, {', '.join(map(str, self.array_shape))}) "
                f"({self.describe()}), got {shape}"
            )
        return frames

    # --- descriptions: stream tags, recordings, messages -----------------------------------
    def to_dict(self) -> dict[str, int]:
        """{"K", "S", "M"}: the geometry in a ``frame_shape`` stream tag and a recording's metadata."""
        return {"K": self.antennas, "S": self.subcarriers, "M": self.symbols}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FrameGeometry":
        """The geometry of a :meth:`to_dict` description (a missing "M" is one symbol, as the
        tags and recordings written before symbols existed)."""
        try:
            return cls(int(d["K"]), int(d["S"]), int(d.get("M", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise GeometryError(f"not a frame geometry {{K, S, M}}: {dict(d)!r} ({exc})") from None

    def mismatch(self, other: "FrameGeometry") -> str | None:
        """None when ``other`` equals this geometry, else the keys that differ, e.g.
        'K = 32 against K = 64'."""
        mine, theirs = self.to_dict(), other.to_dict()
        diff = [k for k in mine if mine[k] != theirs[k]]
        if not diff:
            return None
        return ", ".join(f"{k} = {theirs[k]}" for k in diff) + " against " + ", ".join(f"{k} = {mine[k]}" for k in diff)


__all__ = ["FrameGeometry", "GeometryError"]
