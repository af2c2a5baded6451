"""Peak-memory estimate of a run, and the up-front check that it fits in the memory the
machine has available, so that an oversized scenario (``--set scene.max_targets=1000000``)
is refused with one line naming the key instead of allocating gigabytes.

The estimate follows the arrays of one batch of ``run.batch`` frames (simulation.py,
evaluation.py, model/omp.py), in bytes: complex64 = 8, complex128 = 16, float64 = 8.
It is an estimate (numpy temporaries vary), meant to be within a small factor. A streaming
run (isac-sim: ``streaming=True``) adds the GNU Radio buffers of its flowgraph, which are
exact (:func:`stream_buffer_bytes`).
"""

from __future__ import annotations

import os
from typing import Mapping

from .config import ConfigError, Scenario

C64, C128, F64 = 8, 16, 8
#: Python objects kept per scored frame (GOSPA, counts, errors in lists)
BYTES_PER_SCORED_FRAME = 200
#: GNU Radio's default stream buffer of an output port (bytes), before its item and page rounding
GR_BUFFER_BYTES = 32768
#: environment variable: a memory budget in bytes (e.g. 16e9) below the machine's available memory
LIMIT_ENV = "ISAC_MEMORY_LIMIT"

#: the keys the estimate depends on
SIZE_KEYS = (
    "array.antennas",
    "ofdm.subcarriers",
    "ofdm.symbols",
    "receiver.angle_grid",
    "receiver.delay_grid",
    "transmitter.beam_grid",
    "scene.max_targets",
    "run.batch",
    "run.frames",
    "run.calibration_frames",
)


class ResourceError(ConfigError):
    """The scenario would not fit in memory; the message names the dominant key."""


def _sizes(scenario: Scenario) -> dict[str, int]:
    sizes = {key: int(scenario.get(key)) for key in SIZE_KEYS}
    sizes["speeds"] = scenario.doppler_points  # N_v (1 for one-symbol frames)
    return sizes


def _terms(z: Mapping[str, int], receiver: str | None, streaming: bool = False) -> dict[str, int]:
    K, S, M = z["array.antennas"], z["ofdm.subcarriers"], z["ofdm.symbols"]
    Nv = z.get("speeds", 1) if M > 1 else 1  # speeds of the Doppler dictionary
    Nd, Ng, T = z["receiver.delay_grid"], z["transmitter.beam_grid"], z["scene.max_targets"]
    # OMP maps span the sector grid (angle_grid), dOMP maps the full grid (beam_grid)
    Na = {"omp": z["receiver.angle_grid"], "domp": Ng}.get(receiver, max(z["receiver.angle_grid"], Ng))
    frames, cal = z["run.frames"], z["run.calibration_frames"]
    B = min(z["run.batch"], max(frames, cal))  # frames of one batch
    terms = {
        # Y_r (B, K, S): the per-frame parts, their stack and Y~ after reciprocal filtering (3),
        # plus one complex128 echo (1) being generated
        "frames": 3 * B * M * K * S * C64 + M * K * S * C128,
        # angle-delay maps (10): Y~ Phi_d^* (B, K, N_tau), then the map M(Y~), the residual map (14),
        # the old one while the new is formed, its power and the update term, each (B, N_theta, N_tau)
        # (M > 1 symbols: the Doppler contraction (B, N_v, K, S) and every map over the N_v speeds)
        "maps": B * Nv * (K * Nd + 5 * Na * Nd) * C64 + (B * Nv * K * S * C64 if M > 1 else 0),
        # dictionaries (8) Phi_a (K, N_theta), Phi_d (S, N_tau): complex64 and their complex128 source
        "dictionaries": (K * Na + S * Nd) * (C64 + C128),
        # LS synthesis (6)-(7): steering A (K, N_theta), A^T and the SVD factors of the least squares
        "beam synthesis": 3 * K * Ng * C128,
        # one frame's targets: steering (K, T) and delay atoms (T, S) twice; OMP: projections
        # (B, N, T) and their einsum product, the joint LS (13) gains, Gram matrix and pseudo-inverse (B, T, T)
        "targets": T * (K + 2 * S) * C128 + 2 * B * T * (Na + Nd) * C64 + 4 * B * T * T * C128,
        # map maxima and counts of every calibration frame, scores of every test frame
        "results": (frames + cal) * (T + 1) * F64 + frames * BYTES_PER_SCORED_FRAME,
    }
    if streaming:  # a flowgraph run (isac-sim)
        terms["stream buffers"] = _stream_buffers(z)
    return terms


def _stream_buffers(z: Mapping[str, int]) -> int:
    """Bytes of the GNU Radio buffers of isac-sim's flowgraph (flowgraph.SimFlowgraph, the
    chain of apps/isac_headless.grc). GNU Radio gives each output port 2 x GR_BUFFER_BYTES / item size
    items, at least 2, raised to the block's minimum (blocks/base.py); an item is one frame:
    3 array-frame ports (precoder X, channel Y_r, reciprocal filter: 8 M K S bytes, at least
    STREAM_FRAMES), 3 complex symbol-frame ports (source x, channel y_c and kappa: 8 M S) and
    2 int32 ones (source m, comm receiver m^: 4 M S), at least SYMBOL_FRAMES."""
    from .blocks.base import STREAM_FRAMES, SYMBOL_FRAMES

    K, S, M = z["array.antennas"], z["ofdm.subcarriers"], z["ofdm.symbols"]

    def port(item: int, minimum: int) -> int:
        return item * max(2 * GR_BUFFER_BYTES // item, 2, minimum)

    array, symbols, ints = C64 * M * K * S, C64 * M * S, 4 * M * S
    return 3 * port(array, STREAM_FRAMES) + 3 * port(symbols, SYMBOL_FRAMES) + 2 * port(ints, SYMBOL_FRAMES)


def stream_buffer_bytes(scenario: Scenario) -> int:
    """Bytes of the stream buffers of isac-sim's flowgraph: 13 MiB x ofdm.symbols at K = 64,
    S = 256 (docs/blocks.md, measured from each block's max_output_buffer)."""
    return _stream_buffers(_sizes(scenario))


def memory_terms(scenario: Scenario, receiver: str | None = None, streaming: bool = False) -> dict[str, int]:
    """The estimate by part (bytes). ``receiver``: "omp", "domp" or None (the larger);
    ``streaming``: a flowgraph run (isac-sim), which adds its stream buffers."""
    return _terms(_sizes(scenario), receiver, streaming)


def estimate_memory_bytes(scenario: Scenario, receiver: str | None = None, streaming: bool = False) -> int:
    """Estimated peak memory (bytes) of evaluating ``scenario``: one batch of frames, its
    angle-delay maps and OMP state, the dictionaries, the LS beam synthesis and the results;
    with ``streaming``, also the flowgraph's stream buffers (isac-sim)."""
    return sum(memory_terms(scenario, receiver, streaming).values())


def dominant_key(scenario: Scenario, receiver: str | None = None, streaming: bool = False) -> str:
    """The size key that, set back to its default, lowers the estimate most (among the keys
    above their default; if none is, the key whose reduction to 1 lowers it most)."""
    from .config import DEFAULTS

    sizes = _sizes(scenario)
    total = sum(_terms(sizes, receiver, streaming).values())

    def saving(key: str, value: int) -> int:
        return total - sum(_terms({**sizes, key: value}, receiver, streaming).values())

    default = {k: DEFAULTS[k.split(".")[0]][k.split(".")[1]] for k in SIZE_KEYS}
    raised = [k for k in SIZE_KEYS if sizes[k] > default[k]]
    if raised:
        return max(raised, key=lambda k: saving(k, default[k]))
    return max(SIZE_KEYS, key=lambda k: saving(k, 1))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_available() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1), if limited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # v1 writes a huge number for "no limit"
            return max(0, int(limit) - usage)
    return None


def available_memory_bytes() -> int | None:
    """Memory a run may use (bytes): MemAvailable of /proc/meminfo, lowered by a cgroup limit
    and by $ISAC_MEMORY_LIMIT (bytes) when set; None when none is known."""
    known = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    text = os.environ.get(LIMIT_ENV, "").strip()
    if text:
        try:
            limit = float(text)
        except ValueError:
            limit = float("nan")
        if not limit > 0 or limit == float("inf"):
            raise ConfigError(f"${LIMIT_ENV} must be a number of bytes > 0 (e.g. 16e9), got {text!r}")
        known.append(int(limit))
    return min(known) if known else None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary prefixes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    raise AssertionError


def check_memory(
    scenario: Scenario, receiver: str | None = None, available: int | None = None, streaming: bool = False
) -> int:
    """Refuse a scenario whose estimated peak memory exceeds ``available`` bytes (default:
    :func:`available_memory_bytes`): ResourceError naming the dominant key, its value, the
    estimate and the memory available. ``streaming``: a flowgraph run (isac-sim), its stream
    buffers counted. Returns the estimate (bytes)."""
    terms = memory_terms(scenario, receiver, streaming)
    need = sum(terms.values())
    if available is None:
        available = available_memory_bytes()
    if available is not None and need > available:
        key = dominant_key(scenario, receiver, streaming)
        run = scenario.run
        batch = min(run["batch"], max(run["frames"], run["calibration_frames"]))
        buffers = f" and stream buffers of {format_bytes(terms['stream buffers'])}" if streaming else ""
        raise ResourceError(
            f"{key} = {scenario.get(key)}: a run needs an estimated {format_bytes(need)} of memory "
            f"(batches of {batch} frames{buffers}), more than the {format_bytes(available)} available: "
            f"lower {key}"
        )
    return need


__all__ = [
    "LIMIT_ENV",
    "ResourceError",
    "SIZE_KEYS",
    "available_memory_bytes",
    "check_memory",
    "dominant_key",
    "estimate_memory_bytes",
    "format_bytes",
    "memory_terms",
    "stream_buffer_bytes",
]
