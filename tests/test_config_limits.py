"""Config-input reliability (issue 11): out-of-range SNRs and extreme finite values,
integers above 2^53, non-UTF-8 files, sectors between two LS beam-grid angles, the float32
dynamic range, and sizes that cannot fit in memory are refused up front with one line naming
the key and its range (exit status 2 in the apps)."""

import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gnuradio.isac import resources
from gnuradio.isac.config import ConfigError, Scenario
from gnuradio.isac.model.array import scenario_nominal_array
from gnuradio.isac.model.beamforming import desired_beampattern, sector_beam
from gnuradio.isac.model.grids import full_angle_grid

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def load(*overrides):
    return Scenario.default().with_overrides(list(overrides))


def run_app(app, *args, env=None, timeout=90):
    """An installed app as a subprocess (the environment minus PYTHONPATH, plus ``env``)."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", resources.LIMIT_ENV)}
    full.update(env or {})
    return subprocess.run(
        [str(BIN / app), *args, "--no-progress"], capture_output=True, text=True, timeout=timeout, env=full, cwd=REPO
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


# --- SNRs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["scene.snr_sensing_db", "scene.snr_comm_db"])
@pytest.mark.parametrize("value", ["400", "-400", "100.5", "-100.5", "1e308"])
def test_snr_outside_plus_minus_100_db_is_refused(key, value):
    with pytest.raises(ConfigError, match=re.escape(f"{key} must be in [-100, 100] (dB), got {float(value)!r}")):
        load(f"{key}={value}")


@pytest.mark.parametrize("key", ["scene.snr_sensing_db", "scene.snr_comm_db"])
def test_snr_edges_are_allowed(key):
    assert load(f"{key}=100").get(key) == 100.0
    assert load(f"{key}=-100").get(key) == -100.0


def test_isac_sim_blames_the_snr_not_the_threshold():
    """snr_sensing_db = 400 used to give sigma_r^2 = 1e40, maps of inf and an inf threshold."""
    proc = run_app("isac-sim", "--set", "scene.snr_sensing_db=400")
    assert_one_line_error(proc, "scene.snr_sensing_db must be in [-100, 100] (dB), got 400.0")
    assert "threshold" not in proc.stderr


# --- extreme finite values -------------------------------------------------------------------

EXTREMES = [
    ("scene.noise_power=1e80", "scene.noise_power must be in [1e-30, 1e30], got 1e+80"),
    ("scene.noise_power=1e-80", "scene.noise_power must be in [1e-30, 1e30], got 1e-80"),
    ("transmitter.power=1e300", "transmitter.power must be in [1e-30, 1e30], got 1e+300"),
    ("array.carrier_hz=1e-300", "array.carrier_hz must be in [1e6, 1e13] (Hz), got 1e-300"),
    ("ofdm.subcarriers=1e8", "ofdm.subcarriers must be an integer >= 1 and <= 65536, got 100000000"),
    ("ofdm.spacing_hz=1e-300", "ofdm.spacing_hz must be in [100, 1e9] (Hz), got 1e-300"),
    ("array.spacing_std_m=1e300", "array.spacing_std_m must be in [0, 300] (m), got 1e+300"),
    ("receiver.gospa_p=1e300", "receiver.gospa_p must be in [1, 20], got 1e+300"),
    ("transmitter.phi_rad=1e300", "transmitter.phi_rad must be in [-6.283185307179586, 6.283185307179586] (rad)"),
]


@pytest.mark.parametrize("override, message", EXTREMES, ids=[o for o, _ in EXTREMES])
def test_extreme_finite_values_are_refused_with_the_range(override, message):
    with pytest.raises(ConfigError) as exc:
        load(override)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize("app", ["isac-sim", "isac-eval"])
@pytest.mark.parametrize("override, message", EXTREMES[:5], ids=[o for o, _ in EXTREMES[:5]])
def test_apps_exit_2_on_extreme_values(app, override, message):
    assert_one_line_error(run_app(app, "--set", override), message)


# --- integers above 2^53 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        f"run.seed={2**53 + 1}",
        f"array.impairment_seed={2**63 - 1}",
        f"array.carrier_hz={2**53 + 1}",
        f"transmitter.phi_rad={-(2**60)}",
        "run.batch=1e17",
        f"scene.range_m=[10, {2**53 + 1}]",
    ],
)
def test_integers_above_2_53_are_refused_as_not_exactly_representable(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as exc:
        load(override)
    msg = str(exc.value)
    assert msg.startswith(key) and "2^53 = 9007199254740992" in msg and "not exactly representable" in msg


def test_2_53_itself_is_allowed():
    assert load(f"run.seed={2**53}").run["seed"] == 2**53


def test_integer_above_2_53_in_a_toml_file(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(f"[array]\nimpairment_seed = {2**60}\n")
    with pytest.raises(ConfigError, match=r"array\.impairment_seed must be an integer of magnitude <= 2\^53"):
        Scenario.load(str(path))


# --- non-UTF-8 files ---------------------------------------------------------------------------


def test_non_utf8_toml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[array]\n# r\xe9seau\nantennas = 32\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        Scenario.load(str(path))
    assert str(exc.value) == f"{path}: not a UTF-8 text file (TOML must be UTF-8): byte 0xe9 at offset 11"


def test_apps_exit_2_on_a_non_utf8_config(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[scene]\nsnr_sensing_db = 10 # \xff\n")
    assert_one_line_error(run_app("isac-sim", "--config", str(path)), str(path), "not a UTF-8 text file")


# --- sectors and the LS beam grid ------------------------------------------------------------------


def _beam_nonzero(sector_deg, n):
    """Whether the desired beampattern (6) of a sector on the n-point LS grid has a non-zero entry."""
    b = desired_beampattern(full_angle_grid(n), tuple(math.radians(v) for v in sector_deg), 64)
    return bool(np.any(b > 0))


@pytest.mark.parametrize("key", ["scene.target_sector_deg", "scene.comm_sector_deg"])
def test_a_sector_between_two_beam_grid_angles_is_refused_with_the_minimum_width(key):
    with pytest.raises(ConfigError) as exc:
        load(f"{key}=[30, 30.1]")
    msg = str(exc.value)
    assert msg.startswith(f"{key} = [30.0, 30.1] contains no angle of the LS beam grid")
    assert "step 180/719 = 0.2503 degrees" in msg
    width = float(re.search(r"at least ([0-9.]+) degrees wide", msg).group(1))
    assert 180 / 719 <= width < 180 / 719 + 1e-3
    assert not _beam_nonzero([30, 30.1], 720)  # what used to fail later: zero desired beampattern


def test_any_sector_of_the_minimum_width_is_accepted_and_gives_a_beam():
    rng = np.random.default_rng(5)
    for n in (720, 181, 64, 2):
        msg = str(
            pytest.raises(
                ConfigError, load, f"transmitter.beam_grid={n}", "scene.comm_sector_deg=[30.0001, 30.0002]"
            ).value
        )
        width = float(re.search(r"at least ([0-9.]+) degrees wide", msg).group(1))
        for lo in rng.uniform(-90, 90 - width, 20):
            s = load(
                f"transmitter.beam_grid={n}",
                f"scene.comm_sector_deg=[{lo!r}, {lo + width!r}]",
                "scene.target_sector_deg=[-90, 90]",
            )
            f = sector_beam(scenario_nominal_array(s), s.comm_sector_rad, n, s.transmitter["beam_rcond"])
            assert np.isfinite(f).all() and np.linalg.norm(f) == pytest.approx(1.0)


def test_the_config_rule_is_exactly_the_desired_beampattern_being_non_zero():
    """Narrow random sectors: accepted if and only if (6) has a grid angle inside, for several
    grid sizes, including sectors that end exactly on a grid angle."""
    rng = np.random.default_rng(11)
    for n in (720, 361, 100, 3):
        grid = np.rad2deg(full_angle_grid(n))
        step = 180 / (n - 1)
        widths = rng.uniform(0.01, 1.5, 150) * step
        sectors = [(lo, min(lo + w, 90.0)) for lo, w in zip(rng.uniform(-89, 80, 150), widths)]
        sectors += [(g, g + step / 3) for g in grid[1 : -1 : max(1, n // 7)]]  # starts on a grid angle
        sectors += [(g - step / 3, g) for g in grid[1 : -1 : max(1, n // 7)]]  # ends on one
        outcomes = set()
        for lo, hi in sectors:
            expected = _beam_nonzero([lo, hi], n)
            outcomes.add(expected)
            try:
                load(
                    f"transmitter.beam_grid={n}",
                    "scene.target_sector_deg=[-90, 90]",
                    f"scene.comm_sector_deg=[{lo!r}, {hi!r}]",
                )
                accepted = True
            except ConfigError as exc:
                assert str(exc).startswith("scene.comm_sector_deg = [") and "contains no angle of the LS" in str(exc)
                accepted = False
            assert accepted == expected, (n, lo, hi)
        assert outcomes == {True, False}, n  # both cases were exercised


def test_a_one_point_beam_grid_only_serves_sectors_that_start_at_minus_90():
    with pytest.raises(ConfigError, match=r"transmitter\.beam_grid = 1: the single angle -90 degrees"):
        load("transmitter.beam_grid=1")
    assert (
        load(
            "transmitter.beam_grid=1", "scene.target_sector_deg=[-90, -20]", "scene.comm_sector_deg=[-90, 50]"
        ).transmitter["beam_grid"]
        == 1
    )


# --- float32 dynamic range ------------------------------------------------------------------------


def test_noise_power_and_power_that_would_overflow_the_float32_maps_are_refused():
    with pytest.raises(ConfigError) as exc:
        load("scene.noise_power=1e30")  # N0 K S (1 + 10^1.5 K) = 3.3e37
    msg = str(exc.value)
    assert msg.startswith("scene.noise_power = 1e+30 with transmitter.power = 1")
    assert "peak angle-delay map power" in msg and "3.32e+37 above 1e+37" in msg
    with pytest.raises(ConfigError, match=r"peak comm sample power 10\^\(scene\.snr_comm_db/10\)\*N0\*P\*K"):
        load("scene.snr_sensing_db=-100", "scene.snr_comm_db=100", "transmitter.power=1e30")
    assert load("scene.noise_power=1e29").scene["noise_power"] == 1e29


def test_results_do_not_depend_on_the_noise_scale_inside_the_range():
    """The SNRs scale the target gains and channel taps with N0, so N0 only scales Y: the
    detections at the ends of the allowed range are those at N0 = 1."""
    from gnuradio.isac.evaluation import evaluate

    small = [
        "run.frames=12",
        "run.calibration_frames=12",
        "receiver.angle_grid=90",
        "receiver.delay_grid=60",
        "array.antennas=16",
        "ofdm.subcarriers=64",
        "scene.range_m=[10, 100]",
        "run.batch=12",
    ]
    keys = ("p_md", "p_fa", "ser", "angle_rmse_deg", "range_rmse_m")
    ref = evaluate(load(*small), "baseline", progress=False)
    for n0 in (1e-30, 1e29):
        got = evaluate(load(*small, f"scene.noise_power={n0!r}"), "baseline", progress=False)
        for key in keys:
            assert got[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6, nan_ok=True), (n0, key)
        assert got["threshold"] == pytest.approx(ref["threshold"] * n0, rel=1e-3)


# --- memory -------------------------------------------------------------------------------------


def test_estimate_covers_the_arrays_a_batch_must_hold():
    """At least: a batch of frames Y (B K S complex64), one angle-delay map per frame
    (B N_theta N_tau complex64) and the OMP gains (B T_max^2 complex128)."""
    for overrides in (
        [],
        ["array.antennas=512"],
        ["scene.max_targets=200"],
        ["receiver.angle_grid=5000"],
        ["run.batch=400", "run.frames=1000"],
    ):
        s = load(*overrides)
        K, S, B, T = s.array["antennas"], s.ofdm["subcarriers"], s.run["batch"], s.scene["max_targets"]
        floor = B * K * S * 8 + B * s.receiver["angle_grid"] * s.receiver["delay_grid"] * 8 + B * T * T * 16
        assert floor <= resources.estimate_memory_bytes(s, "omp") <= 12 * floor, overrides


def test_estimate_matches_the_measured_numpy_peak():
    """tracemalloc peak of evaluate() (numpy kernel) on a small scenario, against the estimate."""
    import tracemalloc

    from gnuradio.isac.evaluation import evaluate

    s = load(
        "array.antennas=32",
        "ofdm.subcarriers=128",
        "receiver.angle_grid=300",
        "receiver.delay_grid=150",
        "run.frames=40",
        "run.calibration_frames=40",
        "run.batch=40",
        "scene.max_targets=8",
    )
    tracemalloc.start()
    try:
        evaluate(s, "baseline", progress=False, kernel="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = resources.estimate_memory_bytes(s, "omp")
    assert 0.5 <= peak / estimate <= 1.5, (peak, estimate)


def test_a_batch_that_is_larger_than_the_run_counts_only_the_frames_run():
    s = load("run.batch=100000", "run.frames=10", "run.calibration_frames=10")
    assert resources.estimate_memory_bytes(s) == resources.estimate_memory_bytes(
        load("run.batch=10", "run.frames=10", "run.calibration_frames=10")
    )


@pytest.mark.parametrize(
    "override, key",
    [
        ("scene.max_targets=1000000", "scene.max_targets"),
        ("array.antennas=100000", "array.antennas"),
        ("receiver.angle_grid=200000", "receiver.angle_grid"),
        ("receiver.delay_grid=200000", "receiver.delay_grid"),
        ("ofdm.subcarriers=65536", "ofdm.subcarriers"),
        ("transmitter.beam_grid=1000000", "transmitter.beam_grid"),
    ],
)
def test_check_memory_names_the_dominant_key(override, key):
    s = load(override, "run.batch=100", "run.frames=1000")
    need = resources.estimate_memory_bytes(s)
    assert resources.dominant_key(s) == key
    with pytest.raises(resources.ResourceError) as exc:
        resources.check_memory(s, available=need - 1)
    msg = str(exc.value)
    assert msg.startswith(f"{key} = {s.get(key)}: a run needs an estimated {resources.format_bytes(need)}")
    assert f"more than the {resources.format_bytes(need - 1)} available: lower {key}" in msg
    assert isinstance(exc.value, ConfigError)
    assert resources.check_memory(s, available=need) == need


def test_the_batch_is_named_when_it_dominates():
    s = load("run.batch=20000", "run.frames=20000")
    assert resources.dominant_key(s) == "run.batch"


def test_domp_maps_span_the_beam_grid():
    s = load("transmitter.beam_grid=20000")
    assert resources.estimate_memory_bytes(s, "domp") > 10 * resources.estimate_memory_bytes(s, "omp")
    assert resources.estimate_memory_bytes(s) == resources.estimate_memory_bytes(s, "domp")


def test_available_memory_is_memavailable_lowered_by_the_limit(monkeypatch):
    monkeypatch.delenv(resources.LIMIT_ENV, raising=False)
    mem = resources.available_memory_bytes()
    with open("/proc/meminfo") as fh:
        avail = int(next(line for line in fh if line.startswith("MemAvailable:")).split()[1]) * 1024
    assert 0 < mem <= avail * 1.5  # MemAvailable moves between the two reads
    monkeypatch.setenv(resources.LIMIT_ENV, "1e6")
    assert resources.available_memory_bytes() == 10**6
    monkeypatch.setenv(resources.LIMIT_ENV, "lots")
    with pytest.raises(ConfigError, match=r"\$ISAC_MEMORY_LIMIT must be a number of bytes > 0 .*, got 'lots'"):
        resources.available_memory_bytes()
    monkeypatch.setenv(resources.LIMIT_ENV, "1e6")
    with pytest.raises(resources.ResourceError, match=r"^run\.batch = 50: a run needs an estimated"):
        resources.check_memory(Scenario.default())


@pytest.mark.parametrize("app", ["isac-sim", "isac-eval"])
def test_apps_refuse_a_million_targets_at_once(app):
    proc = run_app(app, "--set", "scene.max_targets=1000000", timeout=60)
    assert_one_line_error(
        proc, "scene.max_targets = 1000000: a run needs an estimated", "PiB of memory", "lower scene.max_targets"
    )


def test_isac_sim_refuses_100000_antennas_at_once():
    """59.9 GiB estimated (41.6 GiB of batches, 18.3 GiB of stream buffers): refused under a
    32 GB budget on any machine."""
    proc = run_app("isac-sim", "--set", "array.antennas=100000", env={resources.LIMIT_ENV: "32e9"}, timeout=60)
    assert_one_line_error(
        proc,
        "array.antennas = 100000: a run needs an estimated 59.9 GiB of memory",
        "stream buffers of 18.3 GiB",
        "lower array.antennas",
    )


def test_isac_train_refuses_before_training(tmp_path):
    out = tmp_path / "w.safetensors"
    proc = run_app("isac-train", "--out", str(out), "--set", "scene.max_targets=1000000", timeout=120)
    assert_one_line_error(proc, "scene.max_targets = 1000000")
    assert not out.exists()


def test_isac_sim_counts_its_stream_buffers():
    """isac-sim's memory check adds its flowgraph's GNU Radio buffers (13 MiB per OFDM symbol
    of a frame at K = 64, S = 256: docs/blocks.md, measured there from max_output_buffer), so
    a frame of 64 symbols that isac-eval could evaluate is refused by isac-sim when the 832 MiB
    of buffers do not fit, naming ofdm.symbols."""
    one = Scenario.default()
    many = one.with_overrides({"ofdm.symbols": 64, "scene.speed_mps": [-30.0, 30.0]})
    assert resources.stream_buffer_bytes(one) == 13_631_488
    assert resources.stream_buffer_bytes(many) == 64 * 13_631_488 == 872_415_232
    evaluation = resources.estimate_memory_bytes(many, "omp")
    assert resources.estimate_memory_bytes(many, "omp", streaming=True) == evaluation + 872_415_232
    assert resources.memory_terms(many, "omp", streaming=True)["stream buffers"] == 872_415_232
    assert resources.check_memory(many, "omp", available=evaluation) == evaluation
    with pytest.raises(resources.ResourceError, match=r"^ofdm\.symbols = 64: .*stream buffers of 832\.0 MiB\)"):
        resources.check_memory(many, "omp", available=evaluation, streaming=True)
    proc = run_app(
        "isac-sim",
        *("--set", "ofdm.symbols=64", "--set", "scene.speed_mps=[-30,30]"),
        env={resources.LIMIT_ENV: str(evaluation + 10**6)},
    )
    assert_one_line_error(proc, "ofdm.symbols = 64: a run needs an estimated", "stream buffers of 832.0 MiB")
