"""The scenario configuration schema: ONE table of every key (``section.key``) with its
default, unit, allowed range, one-line meaning, paper symbol / equation, and the GNU Radio
block parameter names that stand for it.

``config.Scenario.validated`` checks every simple range from this table; rules that need
other keys' values (the unambiguous range, the LS beam grid inside a sector, the float32
dynamic range) are code in ``config.py``; ``maximum_ref`` names such a bound so that it is
checked and documented with the key. ``docs/config.md`` is generated from this table by
``tools/gen_config_doc.py``.

Standard library only: importable without GNU Radio, numpy or torch, e.g.
``from gnuradio.isac.config_schema import KEYS``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

#: Largest integer magnitude accepted anywhere: 2^53, the last integer that float64 (JSON,
#: GRC's ``real`` parameters, numpy arrays) represents exactly.
MAX_EXACT_INT = 2**53

#: Cap of the size keys (antennas, grids, targets, batch): 2^20. Sizes are really limited by
#: memory (``resources.check_memory``); the cap keeps products of two sizes exact below 2^40.
MAX_SIZE = 2**20

#: default seconds the metrics block (isac.metrics ``stall_limit_s``, isac-sim ``--stall-limit``)
#: lets the stream or a message port stand still before it stops the flowgraph (0 = for ever)
STALL_LIMIT_S = 30.0

#: section -> one-line heading of its table in docs/config.md
SECTIONS: dict[str, str] = {
    "array": "the ULA of the ISAC transceiver (Sec. II-A, II-D)",
    "ofdm": "the OFDM waveform (Sec. II-A)",
    "scene": "targets, channels and noise (Sec. II-A, II-B, V-A)",
    "transmitter": "the ISAC precoder (Sec. II-C, III-A)",
    "receiver": "the sensing receiver and its scoring (Sec. III-B, IV-C, V-B)",
    "run": "how much to simulate (not part of the scenario hash)",
}

_UNIT_WORDS = {"deg": "degrees"}


def _num(x: float | int) -> str:
    """Short text that reads back as ``x``: 1e-30, 6e10, 0.1, -90, 1048576, 6.283185307179586."""
    if isinstance(x, int):
        return str(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        mantissa, exponent = f"{x:.15e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    else:
        text = f"{x:.15g}"
    return text if float(text) == x else repr(x)


@dataclass(frozen=True)
class Key:
    """One configuration key. ``default``'s type is the type required (int, float, str, or
    a list of 2 floats = an interval [min, max]). Bounds apply to a number or to each element
    of an interval; ``None`` = unbounded on that side."""

    section: str
    name: str
    default: Any
    unit: str  # SI unit, "deg", "dB", "rad"; "-" = dimensionless, "linear" = relative power
    doc: str  # one line: what it is
    paper: str  # symbol and equation of the paper
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False  # True: value > minimum, else >=
    max_open: bool = False
    #: a bound that depends on other keys, computed by config.py (``Scenario.derived_bounds``)
    maximum_ref: str | None = None
    choices: tuple[str, ...] = ()
    why: str = ""  # why the range is what it is (docs)
    rules: str = ""  # further cross-key rules, as text (docs); they are code in config.py
    #: "int": the key is a list of any length of integers (``default`` is a list), each within
    #: [minimum, maximum or maximum_ref], distinct, and at most that many of them
    list_of: str | None = None
    #: False: the key enters ``Scenario.hash()`` only when its value differs from ``default``.
    #: Keys added after scenario hashes were recorded (shipped weights) whose default is "off"
    #: use it, so the hash of every scenario that does not use them stays what it was.
    hash_default: bool = True
    #: an interval key may be one value, [v, v] (min <= max instead of min < max)
    point_ok: bool = False

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def field_id(self) -> str:
        """The key's parameter id in GRC's ISAC Scenario block: ``section_name`` (sections have no
        underscore, so the id names one key)."""
        return f"{self.section}_{self.name}"

    @property
    def kind(self) -> str:
        """'int', 'float', 'str', 'interval' or 'list' (of integers)."""
        d = self.default
        if isinstance(d, list):
            return "list" if self.list_of else "interval"
        return "int" if isinstance(d, int) and not isinstance(d, bool) else type(d).__name__

    # --- checking ------------------------------------------------------------------
    def _inside(self, v: float, ref: float | None) -> bool:
        lo_ok = self.minimum is None or (v > self.minimum if self.min_open else v >= self.minimum)
        hi = self.maximum if ref is None else (ref if self.maximum is None else min(ref, self.maximum))
        hi_ok = hi is None or (v < hi if self.max_open else v <= hi)
        return bool(lo_ok and hi_ok)  # False for NaN

    def violation(self, value: Any, ref: tuple[str, float] | None = None) -> str | None:
        """None if ``value`` (already of the key's type) is allowed, else the one-line message
        naming the key and its range. ``ref`` = (text, value) of ``maximum_ref``."""
        ref_value = None if ref is None else ref[1]
        if self.choices:
            if value not in self.choices:
                return f"{self.key} must be one of {', '.join(self.choices)}; got {value!r}"
            return None
        if self.kind == "interval":
            lo, hi = value
            ordered = lo <= hi if self.point_ok else lo < hi
            if not (self._inside(lo, ref_value) and self._inside(hi, ref_value) and ordered):
                return f"{self.key} must satisfy {self.range_text(ref)}, got [{lo}, {hi}]"
            return None
        if self.kind == "list":
            hi = self.maximum if ref_value is None else ref_value
            if (
                not all(self._inside(v, ref_value) for v in value)
                or len(set(value)) != len(value)
                or (hi is not None and len(value) > hi)
            ):
                return f"{self.key} must be {self.range_text(ref)}, got {list(value)!r}"
            return None
        if self.kind in ("int", "float") and not self._inside(value, ref_value):
            return f"{self.key} must be {self.range_text(ref)}, got {value!r}"
        return None

    # --- text ----------------------------------------------------------------------
    def _ref_text(self, ref: tuple[str, float] | None) -> str:
        """'ofdm.subcarriers = 256', 'c/(2*ofdm.spacing_hz) = 1249.1 m' (the bound's name alone without a value)."""
        if ref is None:
            return str(self.maximum_ref)
        if self.kind in ("int", "list"):
            return f"{self.maximum_ref} = {_num(int(ref[1]))}"
        return f"{self.maximum_ref} = {ref[1]:.1f} {self.unit}"

    def range_text(self, ref: tuple[str, float] | None = None) -> str:
        """The allowed range as the error messages write it: 'an integer >= 1 and <= 65536',
        'in (0, 1)', 'in [-100, 100] (dB)', '-90 <= min < max <= 90 (degrees)'."""
        unit = "" if self.unit in ("-", "linear") else f" ({_UNIT_WORDS.get(self.unit, self.unit)})"
        lo = None if self.minimum is None else _num(self.minimum)
        hi = None if self.maximum is None else _num(self.maximum)
        if self.maximum_ref is not None:
            hi, unit = self._ref_text(ref), ""
        lt_lo, lt_hi = ("<" if self.min_open else "<="), ("<" if self.max_open else "<=")
        if self.kind == "list":
            return f"a list of distinct integers >= {lo} and <= {hi}, at most that many"
        if self.kind == "interval":
            return (
                (f"{lo} {lt_lo} " if lo is not None else "")
                + ("min <= max" if self.point_ok else "min < max")
                + (f" {lt_hi} {hi}" if hi is not None else "")
                + unit
            )
        if self.kind == "int":
            return f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "") + unit
        return f"in {'(' if self.min_open else '['}{lo}, {hi}{')' if self.max_open else ']'}{unit}"

    def doc_range(self) -> str:
        """The allowed range as docs/config.md writes it (markdown), with the cross-key rules."""
        if self.choices:
            return ", ".join(f"`{c}`" for c in self.choices)
        lo = None if self.minimum is None else _num(self.minimum)
        hi = None if self.maximum is None else _num(self.maximum)
        if self.maximum_ref is not None:
            hi = _REF_DOCS[self.maximum_ref]
        if self.kind == "list":
            text = f"distinct integers in [{lo}, {hi}], at most {hi} of them"
        elif self.kind == "interval":
            order = "min ≤ max" if self.point_ok else "min < max"
            text = f"2 numbers, {lo} {'<' if self.min_open else '≤'} {order} {'<' if self.max_open else '≤'} {hi}"
        elif self.kind == "int":
            text = f"integer in [{lo}, {hi}]"
        else:
            text = f"{'(' if self.min_open else '['}{lo}, {hi}{')' if self.max_open else ']'}"
        return text + (f"; {self.rules}" if self.rules else "")


#: the docs/config.md text of each ``maximum_ref``
_REF_DOCS = {
    "ofdm.subcarriers": "`ofdm.subcarriers`",
    "c/(2*ofdm.spacing_hz)": "c / (2 `ofdm.spacing_hz`)",
    "array.antennas - 1": "`array.antennas` − 1",
}


def _k(section: str, name: str, default: Any, unit: str, doc: str, paper: str, **kw) -> Key:
    return Key(section, name, default, unit, doc, paper, **kw)


_SIZE = dict(minimum=1, maximum=MAX_SIZE, why="at most 2^20; the memory check is the practical limit")
_SEED = dict(minimum=0, maximum=MAX_EXACT_INT, why="numpy SeedSequence needs seeds ≥ 0; 2^53: exact in float64")

KEYS_LIST: tuple[Key, ...] = (
    # --- [array] ------------------------------------------------------------------------
    _k(
        "array",
        "antennas",
        64,
        "-",
        "number of antenna elements, shared by transmitter and sensing receiver",
        "K",
        **_SIZE,
    ),
    _k(
        "array",
        "carrier_hz",
        60e9,
        "Hz",
        "carrier frequency; sets λ = c / f_c (5.0 mm at 60 GHz)",
        "f_c",
        minimum=1e6,
        maximum=1e13,
        why="1 MHz to 10 THz (λ from 300 m to 30 µm): the radio bands a ULA model describes",
    ),
    _k(
        "array",
        "spacing_std_m",
        2e-4,
        "m",
        "standard deviation of the inter-antenna spacing errors, d_k = λ/2 + σ_λ·N(0,1); `0` is the ideal λ/2 array",
        "σ_λ (Sec. V-A, Example 1); default λ/25 at 60 GHz",
        minimum=0.0,
        maximum=300.0,
        why="300 m = λ at the lowest carrier (1 MHz); more than λ gives randomly placed elements anyway",
    ),
    _k(
        "array",
        "impairment_seed",
        1,
        "-",
        "seed of the one draw that makes the true (impaired) array: the spacings d and, when their models are on, "
        "the element gains, the coupling phases and the dead elements (each from its own stream); all frames of a "
        "scenario share it",
        "d ~ CN(λ/2·1, σ_λ² I) (drawn real)",
        **_SEED,
    ),
    _k(
        "array",
        "impairment",
        "spacing",
        "-",
        "spacing (element position) model: `spacing` = Example 1, element k at (k − (K−1)/2)·d_k; "
        "`cumulative` = element k at Σ_{j<k} d_j (centred; elements never cross)",
        "a_pert(θ; d), Sec. II-D",
        choices=("spacing", "cumulative"),
    ),
    # the element models of a(θ) = diag(g) C a_pos(θ) (model/impairments.py); all off by default and
    # hashed only when on (hash_default=False), so scenarios without them keep their hashes
    _k(
        "array",
        "gain_std_db",
        0.0,
        "dB",
        "standard deviation of the per-element amplitude errors A_k ~ N(0, σ_A²) (dB); `0` = none",
        "g_k = m_k 10^(A_k/20) e^(jφ_k) in a(θ) = diag(g) C a_pos(θ) (Sec. II-D: gain errors)",
        minimum=0.0,
        maximum=10.0,
        hash_default=False,
        why="at 10 dB the element amplitudes already spread over two orders of magnitude (±2σ); beyond it a few "
        "elements make the whole array",
    ),
    _k(
        "array",
        "phase_std_deg",
        0.0,
        "deg",
        "standard deviation of the per-element phase errors φ_k ~ N(0, σ_φ²); `0` = none",
        "g_k = m_k 10^(A_k/20) e^(jφ_k) (Sec. II-D: gain errors)",
        minimum=0.0,
        maximum=180.0,
        hash_default=False,
        why="at 180 degrees the wrapped phases are nearly uniform: more changes nothing",
    ),
    _k(
        "array",
        "coupling_taps",
        0,
        "-",
        "mutual coupling: number L of neighbours on each side an element couples to; C is the banded symmetric "
        "Toeplitz matrix with c_0 = 1 and c_1 … c_L; `0` = none",
        "C in a(θ) = diag(g) C a_pos(θ) (Sec. II-D: mutual coupling)",
        minimum=0,
        maximum=8,
        rules="≤ `array.antennas` − 1",
        hash_default=False,
        why="8: a few coefficients; coupling falls off with distance (by `coupling_db` per element)",
    ),
    _k(
        "array",
        "coupling_db",
        -20.0,
        "dB",
        "mutual coupling strength: c_l = 10^(l·coupling_db/20) e^(jψ_l), l = 1 … L, ψ_l ~ U[0, 2π) "
        "(used when `coupling_taps` > 0)",
        "C in a(θ) = diag(g) C a_pos(θ)",
        minimum=-100.0,
        maximum=0.0,
        max_open=True,
        hash_default=False,
        why="below 0 dB: no neighbour couples more strongly than the element itself (c_0 = 1); below −9.5 dB C is "
        "strictly diagonally dominant, hence invertible",
    ),
    _k(
        "array",
        "dead_elements",
        0,
        "-",
        "number of dead or weak elements, drawn at random (from `impairment_seed`) among the K; `0` = none",
        "m_k in g_k = m_k 10^(A_k/20) e^(jφ_k)",
        minimum=0,
        maximum_ref="array.antennas - 1",
        rules="not with a non-empty `dead_list`",
        hash_default=False,
    ),
    _k(
        "array",
        "dead_list",
        [],
        "-",
        "indices k (0 … K−1) of the dead or weak elements, given instead of drawn; `[]` = none",
        "m_k in g_k = m_k 10^(A_k/20) e^(jφ_k)",
        minimum=0,
        maximum_ref="array.antennas - 1",
        list_of="int",
        rules="not with `dead_elements` > 0",
        hash_default=False,
    ),
    _k(
        "array",
        "weak_gain",
        0.0,
        "-",
        "amplitude factor m_k of the dead or weak elements (healthy elements: 1; `0` = dead)",
        "m_k in g_k = m_k 10^(A_k/20) e^(jφ_k)",
        minimum=0.0,
        maximum=1.0,
        max_open=True,
        hash_default=False,
        why="below 1: a gain of 1 is a healthy element",
    ),
    # --- [ofdm] -------------------------------------------------------------------------
    _k(
        "ofdm",
        "subcarriers",
        256,
        "-",
        "number of subcarriers",
        "S",
        minimum=1,
        maximum=65536,
        why="65536: FFT sizes of OFDM systems stay far below",
    ),
    _k(
        "ofdm",
        "spacing_hz",
        120e3,
        "Hz",
        "subcarrier spacing; sets the unambiguous range c / (2Δf) (1249.1 m at 120 kHz) and the range "
        "resolution c / (2SΔf) (4.88 m)",
        "Δf, ρ(τ) in (1), δ_R in (16)",
        minimum=100.0,
        maximum=1e9,
        why="100 Hz to 1 GHz: unambiguous range c / (2Δf) from 1499 km down to 15 cm",
    ),
    _k(
        "ofdm",
        "symbols",
        1,
        "-",
        "OFDM symbols per frame: each carries new data; the sensing receiver integrates them coherently "
        "and measures the targets' speeds from the Doppler phase across them (1 = the paper's frame)",
        "M",
        minimum=1,
        maximum=4096,
        hash_default=False,
        why="4096: 44 ms of symbols at 120 kHz (a 64 × 256 frame of 4096 symbols is 512 MiB); the memory "
        "check is the practical limit",
    ),
    _k(
        "ofdm",
        "cp_fraction",
        0.25,
        "-",
        "cyclic prefix as a fraction of the useful symbol 1/Δf: an OFDM symbol lasts T_O = (1 + cp)/Δf",
        "T_O = (1 + cp)/Δf",
        minimum=0.0,
        maximum=1.0,
        hash_default=False,
        why="1: a prefix as long as the symbol; 0.25 (the default) is the extended prefix of LTE and Wi-Fi",
        rules="with `ofdm.symbols` > 1 or `ofdm.ici` = `on`, the largest delay 2 R_max / c of `scene.range_m` "
        "fits in the prefix cp / Δf",
    ),
    _k(
        "ofdm",
        "ici",
        "off",
        "-",
        "inter-carrier interference of moving targets: `off` = each symbol's echo turns by its Doppler phase "
        "(subcarriers stay orthogonal); `on` = the echo is simulated in time (IFFT, cyclic prefix, the Doppler "
        "rotation of every sample, FFT), so a target at f_D/Δf ≠ 0 leaks into the other subcarriers",
        "ICI",
        choices=("off", "on"),
        hash_default=False,
    ),
    # --- [scene] ------------------------------------------------------------------------
    _k(
        "scene",
        "max_targets",
        5,
        "-",
        "maximum number of targets; each frame draws T ~ U{0, …, T_max}; OMP runs T_max iterations",
        "T_max",
        **_SIZE,
    ),
    _k(
        "scene",
        "snr_sensing_db",
        15.0,
        "dB",
        "integrated sensing SNR K σ_r² / N0; sets the variance σ_r² of the target gains ψ_t ~ CN(0, σ_r²)",
        "SNR_r, (1)",
        minimum=-100.0,
        maximum=100.0,
        why="±100 dB: far beyond undetectable / noise-free targets (at 400 dB the float32 maps overflow)",
    ),
    _k(
        "scene",
        "snr_comm_db",
        20.0,
        "dB",
        "average communication SNR per subcarrier Σ σ_l² / (S N0)",
        "SNR_c, (4)",
        minimum=-100.0,
        maximum=100.0,
        why="±100 dB: far beyond useless / error-free links",
    ),
    _k(
        "scene",
        "comm_taps",
        5,
        "-",
        "number of taps of the communication channel, exponential power delay profile σ_l² ∝ exp(−l)",
        "L, (4)",
        minimum=1,
        maximum_ref="ofdm.subcarriers",
    ),
    _k(
        "scene",
        "target_sector_deg",
        [-40.0, -20.0],
        "deg",
        "a-priori angular sector of the targets [θ_min, θ_max]: targets are drawn in it, the sensing beam points "
        "at it, the OMP angle grid covers it (default: test sector of Figs. 5, 7-9)",
        "{θ_min, θ_max}",
        minimum=-90.0,
        maximum=90.0,
        rules="contains an angle of the LS beam grid (any sector at least 180 / (`transmitter.beam_grid` − 1) "
        "degrees wide does)",
    ),
    _k(
        "scene",
        "comm_sector_deg",
        [30.0, 50.0],
        "deg",
        "angular sector of the communication receiver [φ_min, φ_max]; φ ~ U[φ_min, φ_max] per frame",
        "{φ_min, φ_max}",
        minimum=-90.0,
        maximum=90.0,
        rules="contains an angle of the LS beam grid (any sector at least 180 / (`transmitter.beam_grid` − 1) "
        "degrees wide does)",
    ),
    _k(
        "scene",
        "range_m",
        [10.0, 190.0],
        "m",
        "a-priori range interval [R_min, R_max]: targets are drawn in it, the OMP delay grid covers it",
        "{R_min, R_max}",
        minimum=0.0,
        maximum_ref="c/(2*ofdm.spacing_hz)",
    ),
    _k(
        "scene",
        "speed_mps",
        [0.0, 0.0],
        "m/s",
        "a-priori radial-speed interval [v_min, v_max] of the targets, positive = approaching (Doppler "
        "f_D = 2 v f_c / c > 0): each target draws v ~ U[v_min, v_max] with its position, the OMP Doppler "
        "grid covers it; [0, 0] = static targets",
        "{v_min, v_max}, f_D",
        minimum=-1e5,
        maximum=1e5,
        point_ok=True,
        hash_default=False,
        rules="every speed within ±λ / (4 T_O), the unambiguous speed (f_D within ±1 / (2 T_O))",
    ),
    _k(
        "scene",
        "noise_power",
        1.0,
        "linear",
        "noise power spectral density of both receivers (W and n are CN(0, N0 I))",
        "N0",
        minimum=1e-30,
        maximum=1e30,
        why="the SNRs scale the gains with N0, so N0 only sets the float32 scale of the frames: at 1e-30 the "
        "noise map stays far above the smallest float32 (1.2e-38); the top is set by the dynamic-range rule",
        rules="dynamic-range rule (below)",
    ),
    # --- [transmitter] ------------------------------------------------------------------
    _k(
        "transmitter",
        "eta",
        0.5,
        "-",
        "ISAC trade-off between the sensing beam f_r and the communication beam f_c; `1` = sensing only, "
        "`0` = communication only",
        "η, (5)",
        minimum=0.0,
        maximum=1.0,
    ),
    _k(
        "transmitter",
        "phi_rad",
        0.0,
        "rad",
        "phase between the two beams (the paper sweeps [0, 7π/4])",
        "ϕ, (5)",
        minimum=-2 * math.pi,
        maximum=2 * math.pi,
        why="±2π: every phase has a representative there",
    ),
    _k(
        "transmitter",
        "power",
        1.0,
        "linear",
        "transmitted power, ‖f‖² = P",
        "P, (5)",
        minimum=1e-30,
        maximum=1e30,
        why="as for N0: P multiplies the received power on top of the SNRs; the top is set by the dynamic-range rule",
        rules="dynamic-range rule (below)",
    ),
    _k(
        "transmitter",
        "beam_grid",
        720,
        "-",
        "number of angles of the LS beampattern synthesis grid over [−90°, 90°] (and of the dOMP angle grid)",
        "N_θ of A in (6)-(7)",
        **_SIZE,
    ),
    _k(
        "transmitter",
        "beam_rcond",
        0.1,
        "-",
        "relative singular-value cut-off of the LS solve (truncated SVD); the default keeps every singular value "
        "of the nominal ULA (so the baseline is (7) exactly) and regularises an ill-conditioned impaired A; "
        "`0` = plain least squares",
        "(7), well-posed variant",
        minimum=0.0,
        maximum=1.0,
        max_open=True,
    ),
    # --- [receiver] ---------------------------------------------------------------------
    _k(
        "receiver",
        "angle_grid",
        720,
        "-",
        "number of angles of the OMP dictionary Φ_a, uniform over `scene.target_sector_deg`",
        "N_θ, (8)",
        **_SIZE,
    ),
    _k(
        "receiver",
        "delay_grid",
        200,
        "-",
        "number of delays of the OMP dictionary Φ_d, uniform over `scene.range_m`",
        "N_τ, (8)",
        **_SIZE,
    ),
    _k(
        "receiver",
        "doppler_grid",
        0,
        "-",
        "number of speeds of the OMP Doppler dictionary Φ_v, uniform over `scene.speed_mps` (used when "
        "`ofdm.symbols` > 1); 0 = automatic: a step of half the velocity resolution λ / (2 M T_O), one speed "
        "for a one-speed interval",
        "N_v",
        minimum=0,
        maximum=MAX_SIZE,
        hash_default=False,
        why="at most 2^20; the memory check is the practical limit",
    ),
    _k(
        "receiver",
        "p_fa",
        1e-2,
        "-",
        "false-alarm rate the OMP stopping threshold δ is calibrated to (smallest δ with p_fa ≤ target)",
        "p_fa (21), δ of Alg. 1",
        minimum=0.0,
        maximum=1.0,
        min_open=True,
        max_open=True,
    ),
    _k(
        "receiver",
        "gospa_c_m",
        90.0,
        "m",
        "GOSPA cut-off distance (default (R_max − R_min)/2)",
        "γ, (17)",
        minimum=0.0,
        min_open=True,
        maximum=1e7,
        why="γ^p stays finite in float64 for every allowed p: (1e7)^20 = 1e140",
    ),
    _k(
        "receiver",
        "gospa_p",
        2.0,
        "-",
        "GOSPA order",
        "p, (17)",
        minimum=1.0,
        maximum=20.0,
        why="p ≥ 1 makes GOSPA a metric; 20 keeps γ^p finite",
    ),
    _k(
        "receiver",
        "gospa_mu",
        2.0,
        "-",
        "GOSPA cardinality-mismatch weight (each missed or false target costs γ^p / μ)",
        "μ, (17)",
        minimum=0.0,
        min_open=True,
        maximum=2.0,
    ),
    _k(
        "receiver",
        "gospa_speed_weight_s",
        0.0,
        "s",
        "weight w of the speed error in a velocity-aware GOSPA: a target and an estimate are "
        "√(‖Δp‖² + (w Δv)²) apart (m); 0 = the paper's GOSPA (17) on positions",
        "GOSPA (17) with w",
        minimum=0.0,
        maximum=1e3,
        hash_default=False,
        why="1000 s: a speed error of 1 m/s then weighs as 1 km",
    ),
    # --- [run] --------------------------------------------------------------------------
    _k(
        "run",
        "frames",
        200,
        "-",
        "number of test frames scored",
        "B of (20)-(22)",
        minimum=1,
        maximum=10**9,
        why="1e9 frames would take years",
    ),
    _k(
        "run",
        "calibration_frames",
        200,
        "-",
        "number of separate frames used to calibrate δ to `receiver.p_fa`",
        "-",
        minimum=1,
        maximum=10**9,
        why="1e9 frames would take years",
    ),
    _k(
        "run",
        "seed",
        0,
        "-",
        "seed of the frame generator; frame i of each stream (test, calibration, ...) depends only on "
        "(seed, stream, i)",
        "-",
        **_SEED,
    ),
    _k(
        "run",
        "batch",
        50,
        "-",
        "frames processed at once (memory / speed only; results do not depend on it)",
        "-",
        **_SIZE,
    ),
)

#: "section.key" -> Key, in documentation (and TOML) order; plug-ins add theirs with register_keys
KEYS: dict[str, Key] = {k.key: k for k in KEYS_LIST}


def defaults() -> dict[str, dict[str, Any]]:
    """section -> key -> default (fresh lists), in table order."""
    out: dict[str, dict[str, Any]] = {}
    for k in KEYS.values():
        out.setdefault(k.section, {})[k.name] = list(k.default) if isinstance(k.default, list) else k.default
    return out


#: section -> key -> default of every key, the built-in table's and those of register_keys (one
#: dict object: config.DEFAULTS is this dict, updated in place when a plug-in registers keys)
DEFAULTS: dict[str, dict[str, Any]] = defaults()


def register_keys(*keys: Key) -> None:
    """Add configuration keys of a plug-in (e.g. an array impairment model of
    model.impairments): each in an existing section, with a new name, and hashed only when it
    differs from its default (``hash_default=False``: the hash of every scenario that does not use
    the key, and so every weights file recorded before it, stays what it was). Registering the
    same key again is a no-op; a different key under a taken name is refused."""
    for key in keys:
        if key.section not in SECTIONS:
            raise ValueError(f"register_keys: {key.key}: section must be one of {', '.join(SECTIONS)}")
        if key.key in KEYS:
            if KEYS[key.key] == key:
                continue
            raise ValueError(f"register_keys: {key.key} is already a configuration key")
        if key.hash_default:
            raise ValueError(f"register_keys: {key.key} must have hash_default=False (existing scenario hashes hold)")
        KEYS[key.key] = key
        DEFAULTS[key.section][key.name] = list(key.default) if isinstance(key.default, list) else key.default


# --- the numeric parameters of the blocks -------------------------------------------------------
#: largest angles or delays of a displayed angle-delay map (map_points), and of their product: a map
#: item of 2^20 float32 values is 4 MiB (the receiver's own grids are receiver.angle_grid/delay_grid)
MAX_MAP_POINTS = 4096
MAX_MAP_SIZE = 2**20


@dataclass(frozen=True)
class BlockParameter:
    """A numeric constructor parameter of a gr-isac block (not a scenario key) and its range: the
    block's constructor checks it (``blocks.base.parameter``) and the block's GRC file asserts it
    (generated by ``tools/gen_grc_scenario.py``), so GRC shows an out-of-range value with the
    parameter and the range before the flowgraph runs. ``kind``: "int", "float", "pair" (two ints,
    each in range, their product at most ``product_max``) or "floats" (a list of numbers, each in
    range). A bound of None is open, but the value must still be finite."""

    block: str  # the block's name and GRC id, e.g. isac_metrics
    name: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False
    unit: str = "-"
    note: str = ""  # what a special value means, e.g. "0 = endless"
    product_max: int | None = None

    def _inside(self, v) -> bool:
        lo_ok = self.minimum is None or (v > self.minimum if self.min_open else v >= self.minimum)
        hi_ok = self.maximum is None or (v < self.maximum if self.max_open else v <= self.maximum)
        return bool(lo_ok and hi_ok and math.isfinite(v))  # False for NaN and +-inf

    def range_text(self) -> str:
        """'an integer >= 0 and <= 9007199254740992 (0 = endless)', 'in (0, 1000] (Hz)', 'a finite
        number >= 0 (s; 0 = wait for ever)'."""
        lo = None if self.minimum is None else _num(self.minimum)
        hi = None if self.maximum is None else _num(self.maximum)
        lt_lo, lt_hi = (">" if self.min_open else ">="), ("<" if self.max_open else "<=")
        if self.kind == "int":
            text = f"an integer {lt_lo} {lo}" + (f" and {lt_hi} {hi}" if hi is not None else "")
        elif self.kind == "pair":
            text = f"two integers {lt_lo} {lo} and {lt_hi} {hi}" + (
                f" whose product is <= {self.product_max}" if self.product_max is not None else ""
            )
        elif lo is not None and hi is not None:
            text = f"in {'(' if self.min_open else '['}{lo}, {hi}{')' if self.max_open else ']'}"
        else:
            text = "a finite number" + (f" {lt_lo} {lo}" if lo is not None else "") + (f" {lt_hi} {hi}" if hi else "")
        unit = "" if self.unit == "-" else _UNIT_WORDS.get(self.unit, self.unit)
        extra = "; ".join(t for t in (unit, self.note) if t)
        return f"{text} ({extra})" if extra else text

    def _number(self, value, integer: bool) -> bool:
        """``value`` is a real number (numpy's included, bool not) inside the range (an integer)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        try:
            v = float(value)
        except OverflowError:  # an int beyond float64
            return False
        return self._inside(v) and (not integer or v == int(v))

    def violation(self, value) -> str | None:
        """None when ``value`` is allowed, else 'must be ..., got ...' (the block names itself)."""
        if self.kind in ("int", "float"):
            return None if self._number(value, self.kind == "int") else f"must be {self.range_text()}, got {value!r}"
        try:
            items = list(value)
        except TypeError:
            items = None
        if self.kind == "pair":
            if (
                items is None
                or len(items) != 2
                or not all(self._number(v, True) for v in items)
                or (self.product_max is not None and int(items[0]) * int(items[1]) > self.product_max)
            ):
                return f"must be {self.range_text()}, got {value!r}"
            return None
        if items is None:
            return f"must be a list of numbers {self.range_text()}, got {value!r}"
        for i, v in enumerate(items):
            if not self._number(v, False):
                shown = float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else v
                return f"entries must each be {self.range_text()}, got {shown!r} (entry {i})"
        return None


def _bp(block: str, name: str, kind: str, **kw) -> BlockParameter:
    return BlockParameter(block, name, kind, **kw)


_COUNT = dict(minimum=0, maximum=MAX_EXACT_INT)
_MAP_POINTS = dict(minimum=1, maximum=MAX_MAP_POINTS, product_max=MAX_MAP_SIZE, note="angles, delays")
BLOCK_PARAMETERS_LIST: tuple[BlockParameter, ...] = (
    _bp("isac_message_source", "frame_count", "int", **_COUNT, note="0 = endless"),
    _bp("isac_message_source", "first_frame", "int", **_COUNT),
    _bp("isac_ula_channel", "first_frame", "int", **_COUNT),
    _bp("isac_ula_channel", "fixed_angles_deg", "floats", minimum=-90.0, maximum=90.0, unit="deg"),
    _bp("isac_ula_channel", "fixed_ranges_m", "floats", minimum=0.0, unit="m"),
    _bp(
        "isac_ula_channel",
        "fixed_speeds_mps",
        "floats",
        minimum=-1e5,
        maximum=1e5,
        unit="m/s",
        note="and within the scenario's unambiguous speed",
    ),
    _bp("isac_ula_channel", "spacings_m", "floats", minimum=0.0, min_open=True, unit="m"),
    _bp("isac_omp_receiver", "threshold", "float", minimum=0.0),
    _bp("isac_omp_receiver", "temperature", "float", minimum=0.0, min_open=True),
    _bp("isac_angle_delay_map_stream", "map_points", "pair", **_MAP_POINTS),
    _bp("isac_map_display", "map_points", "pair", **_MAP_POINTS),
    _bp("isac_map_display", "floor_db", "float", maximum=0.0, max_open=True, unit="dB", note="re the frame maximum"),
    _bp("isac_map_display", "update_hz", "float", minimum=0.0, maximum=1000.0, min_open=True, unit="Hz"),
    _bp(
        "isac_map_display", "xy_frames", "int", minimum=0, maximum=32, note="frames in the x-y scatter, 0 = no scatter"
    ),
    _bp("isac_metrics", "log_every", "int", **_COUNT, note="0 = only at stop"),
    _bp("isac_metrics", "stall_limit_s", "float", minimum=0.0, unit="s", note="0 = wait for ever"),
    _bp("isac_sigmf_sink", "spacings_m", "floats", minimum=0.0, min_open=True, unit="m"),
    _bp("isac_sigmf_source", "frame_count", "int", **_COUNT, note="0 = the whole recording"),
)
#: (block, parameter) -> its range
BLOCK_PARAMETER_RANGES: dict[tuple[str, str], BlockParameter] = {(p.block, p.name): p for p in BLOCK_PARAMETERS_LIST}


__all__ = [
    "BLOCK_PARAMETER_RANGES",
    "BLOCK_PARAMETERS_LIST",
    "BlockParameter",
    "DEFAULTS",
    "KEYS",
    "KEYS_LIST",
    "Key",
    "MAX_EXACT_INT",
    "MAX_MAP_POINTS",
    "MAX_MAP_SIZE",
    "MAX_SIZE",
    "SECTIONS",
    "STALL_LIMIT_S",
    "defaults",
    "register_keys",
]
