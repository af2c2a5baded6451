"""Scenario configuration (python/isac/config.py): Sec. V-A defaults, TOML loading,
--set overrides, validation messages, scenario hash and the TOML round trip."""

import math
import re
from pathlib import Path

import pytest

from gnuradio.isac.config import DEFAULTS, SPEED_OF_LIGHT, ConfigError, Scenario


def load(*overrides, path=None):
    return Scenario.load(path, list(overrides))


def write(tmp_path, text, name="scenario.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --- defaults: Sec. V-A of the paper -------------------------------------------------


def test_defaults_are_the_simulation_parameters_of_sec_v_a():
    s = Scenario.default()
    assert s.array["antennas"] == 64  # K
    assert s.array["carrier_hz"] == 60e9  # f_c
    assert s.ofdm["subcarriers"] == 256  # S
    assert s.ofdm["spacing_hz"] == 120e3  # Delta f
    assert s.scene["max_targets"] == 5  # T_max
    assert s.scene["snr_sensing_db"] == 15.0  # SNR_r
    assert s.scene["snr_comm_db"] == 20.0  # SNR_c
    assert s.scene["comm_taps"] == 5  # L
    assert s.scene["target_sector_deg"] == [-40.0, -20.0]  # test sector
    assert s.scene["comm_sector_deg"] == [30.0, 50.0]
    assert s.scene["range_m"] == [10.0, 190.0]
    assert s.scene["noise_power"] == 1.0
    assert s.transmitter["power"] == 1.0  # P
    assert s.receiver["angle_grid"] == 720  # N_theta
    assert s.receiver["delay_grid"] == 200  # N_tau
    assert s.receiver["p_fa"] == 1e-2
    # GOSPA (17): mu = 2, p = 2, gamma = (R_max - R_min) / 2 = 90 m
    assert s.receiver["gospa_mu"] == 2.0
    assert s.receiver["gospa_p"] == 2.0
    assert s.receiver["gospa_c_m"] == 90.0 == (190.0 - 10.0) / 2
    # sigma_lambda = lambda / 25 = 0.2 mm at 60 GHz
    assert s.array["spacing_std_m"] == pytest.approx(s.wavelength_m / 25, rel=1e-3)
    assert s.array["impairment"] == "spacing"


def test_derived_quantities():
    s = Scenario.default()
    assert s.wavelength_m == pytest.approx(SPEED_OF_LIGHT / 60e9)
    assert s.wavelength_m == pytest.approx(5.0e-3, rel=1e-3)
    assert s.unambiguous_range_m == pytest.approx(SPEED_OF_LIGHT / (2 * 120e3))
    assert s.unambiguous_range_m == pytest.approx(1249.1, abs=0.1)
    assert s.target_sector_rad == pytest.approx((math.radians(-40), math.radians(-20)))
    assert s.comm_sector_rad == pytest.approx((math.radians(30), math.radians(50)))
    assert s.range_interval_m == (10.0, 190.0)
    assert s.get("scene.max_targets") == 5


def test_default_is_a_fresh_copy_not_the_module_defaults():
    s = Scenario.default()
    d = s.to_dict()
    d["array"]["antennas"] = 3
    d["scene"]["range_m"][1] = 999.0
    assert Scenario.default().array["antennas"] == 64
    assert DEFAULTS["scene"]["range_m"] == [10.0, 190.0]
    assert s.scene["range_m"] == [10.0, 190.0]


# --- TOML files and overrides -----------------------------------------------------------


def test_toml_file_loading_overrides_only_the_given_keys(tmp_path):
    path = write(
        tmp_path,
        """
[array]
antennas = 32
spacing_std_m = 0.0

[scene]
target_sector_deg = [-20, 20]
snr_sensing_db = 10

[receiver]
p_fa = 0.05
""",
    )
    s = load(path=path)
    assert s.array["antennas"] == 32 and isinstance(s.array["antennas"], int)
    assert s.array["spacing_std_m"] == 0.0
    assert s.scene["target_sector_deg"] == [-20.0, 20.0]
    assert all(isinstance(v, float) for v in s.scene["target_sector_deg"])
    assert s.scene["snr_sensing_db"] == 10.0 and isinstance(s.scene["snr_sensing_db"], float)
    assert s.receiver["p_fa"] == 0.05
    # everything else stays at the defaults
    assert s.ofdm == DEFAULTS["ofdm"]
    assert s.array["carrier_hz"] == 60e9
    assert s.scene["range_m"] == [10.0, 190.0]


def test_overrides_are_parsed_as_toml_values_and_applied_after_the_file(tmp_path):
    path = write(tmp_path, "[run]\nframes = 7\nseed = 3\n")
    s = load(
        "run.frames=20",  # integer
        "receiver.p_fa=1e-3",  # float in exponent form
        "scene.snr_comm_db=25",  # integer literal for a float key
        "scene.range_m=[20, 100.5]",  # list
        "array.impairment=cumulative",  # bare string
        "array.impairment='spacing'",  # quoted string, later wins
        " transmitter.eta = 0.25 ",  # whitespace around key and value
        path=path,
    )
    assert s.run["frames"] == 20 and isinstance(s.run["frames"], int)
    assert s.run["seed"] == 3  # from the file, not overridden
    assert s.receiver["p_fa"] == 1e-3
    assert s.scene["snr_comm_db"] == 25.0 and isinstance(s.scene["snr_comm_db"], float)
    assert s.scene["range_m"] == [20.0, 100.5]
    assert s.array["impairment"] == "spacing"
    assert s.transmitter["eta"] == 0.25


def test_integral_float_is_accepted_for_an_integer_key():
    s = load("run.frames=20.0")
    assert s.run["frames"] == 20 and isinstance(s.run["frames"], int)


def test_with_overrides_accepts_a_mapping_and_does_not_mutate_the_original():
    base = Scenario.default()
    s = base.with_overrides({"array.antennas": 16, "scene.range_m": [5, 50]})
    assert s.array["antennas"] == 16 and s.scene["range_m"] == [5.0, 50.0]
    assert base.array["antennas"] == 64 and base.scene["range_m"] == [10.0, 190.0]
    assert base.with_overrides([]) is base


def test_invalid_toml_and_missing_file(tmp_path):
    path = write(tmp_path, "[array\nantennas = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(path=path)
    with pytest.raises(OSError):
        load(path=str(tmp_path / "missing.toml"))


# --- validation: clear messages naming the key and the allowed range -------------------


@pytest.mark.parametrize(
    "key",
    [
        "array.antennas",
        "ofdm.subcarriers",
        "receiver.angle_grid",
        "receiver.delay_grid",
        "transmitter.beam_grid",
        "run.frames",
        "run.calibration_frames",
        "run.batch",
        "scene.max_targets",
        "scene.comm_taps",
    ],
)
@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_sizes_are_rejected(key, value):
    with pytest.raises(ConfigError) as exc:
        load(f"{key}={value}")
    msg = str(exc.value)
    assert key in msg
    assert ">= 1" in msg
    assert value in msg


@pytest.mark.parametrize(
    "key", ["array.carrier_hz", "ofdm.spacing_hz", "scene.noise_power", "receiver.gospa_c_m", "transmitter.power"]
)
@pytest.mark.parametrize("value", ["0", "-1.5", "nan", "inf"])
def test_non_positive_or_non_finite_physical_quantities_are_rejected(key, value):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load(f"{key}={value}")


@pytest.mark.parametrize("key", ["scene.target_sector_deg", "scene.comm_sector_deg"])
@pytest.mark.parametrize("value", ["[10, -10]", "[10, 10]", "[-91, 0]", "[0, 90.5]", "[-180, 180]", "[nan, 10]"])
def test_sectors_outside_minus_90_90_or_reversed_are_rejected(key, value):
    with pytest.raises(ConfigError) as exc:
        load(f"{key}={value}")
    msg = str(exc.value)
    assert key in msg
    assert "-90 <= min < max <= 90" in msg


@pytest.mark.parametrize("key", ["scene.target_sector_deg", "scene.comm_sector_deg"])
def test_sector_edges_are_allowed(key):
    assert load(f"{key}=[-90, 90]").get(key) == [-90.0, 90.0]


@pytest.mark.parametrize("value", ["[10, 1300]", "[190, 10]", "[-1, 100]", "[50, 50]", "[0, inf]"])
def test_ranges_must_be_ordered_and_within_the_unambiguous_range(value):
    with pytest.raises(ConfigError) as exc:
        load(f"scene.range_m={value}")
    msg = str(exc.value)
    assert "scene.range_m" in msg
    assert "c/(2*ofdm.spacing_hz)" in msg
    assert "1249.1 m" in msg  # c / (2 * 120 kHz)


def test_unambiguous_range_follows_the_subcarrier_spacing():
    r_max = SPEED_OF_LIGHT / (2 * 120e3)
    assert load(f"scene.range_m=[0, {r_max}]").scene["range_m"][1] == r_max
    with pytest.raises(ConfigError, match="scene.range_m"):
        load(f"scene.range_m=[0, {r_max * (1 + 1e-9)}]")
    # 1 MHz spacing: c / (2 Delta f) = 149.9 m < 190 m (the default R_max)
    with pytest.raises(ConfigError, match=r"149\.9 m"):
        load("ofdm.spacing_hz=1e6")
    assert load("ofdm.spacing_hz=1e6", "scene.range_m=[10, 140]").unambiguous_range_m == pytest.approx(
        149.896, abs=1e-3
    )


@pytest.mark.parametrize("value", ["-0.01", "1.01", "nan"])
def test_eta_outside_0_1_is_rejected(value):
    with pytest.raises(ConfigError, match=re.escape("transmitter.eta must be in [0, 1]")):
        load(f"transmitter.eta={value}")


@pytest.mark.parametrize("value", ["0", "1"])
def test_eta_edges_are_allowed(value):
    assert load(f"transmitter.eta={value}").transmitter["eta"] == float(value)


@pytest.mark.parametrize("value", ["0", "1", "-0.1", "1.5", "nan"])
def test_p_fa_outside_open_unit_interval_is_rejected(value):
    with pytest.raises(ConfigError, match=re.escape("receiver.p_fa must be in (0, 1)")):
        load(f"receiver.p_fa={value}")


@pytest.mark.parametrize(
    "override, match",
    [
        ("receiver.gospa_mu=0", r"receiver\.gospa_mu must be in \(0, 2\]"),
        ("receiver.gospa_mu=2.5", r"receiver\.gospa_mu must be in \(0, 2\]"),
        ("receiver.gospa_p=0.5", r"receiver\.gospa_p must be in \[1, 20\]"),
        ("transmitter.beam_rcond=1", r"transmitter\.beam_rcond must be in \[0, 1\)"),
        ("array.spacing_std_m=-1e-4", r"array\.spacing_std_m must be in \[0, 300\] \(m\)"),
        ("scene.snr_sensing_db=inf", r"scene\.snr_sensing_db must be in \[-100, 100\] \(dB\), got inf"),
        ("transmitter.phi_rad=nan", r"transmitter\.phi_rad must be in \[-6\.28\d+, 6\.28\d+\] \(rad\), got nan"),
        ("scene.comm_taps=300", r"scene\.comm_taps must be an integer >= 1 and <= ofdm\.subcarriers = 256, got 300"),
        ("array.impairment=coupling", r"array\.impairment must be one of spacing, cumulative"),
    ],
)
def test_other_ranges(override, match):
    with pytest.raises(ConfigError, match=match):
        load(override)


@pytest.mark.parametrize(
    "override, match",
    [
        ("array.antennas=6.5", r"array\.antennas must be an integer, got 6\.5"),
        ("array.antennas='64'", r"array\.antennas must be an integer, got '64'"),
        ("array.antennas=true", r"array\.antennas must be an integer, got True"),
        ("array.antennas=inf", r"array\.antennas must be an integer, got inf"),
        ("run.frames=nan", r"run\.frames must be an integer, got nan"),
        ("run.batch=1e400", r"run\.batch must be an integer, got inf"),
        ("scene.snr_sensing_db=high", r"scene\.snr_sensing_db must be a number, got 'high'"),
        ("scene.snr_sensing_db=false", r"scene\.snr_sensing_db must be a number, got False"),
        ("scene.range_m=100", r"scene\.range_m must be a list of 2 numbers, got 100"),
        ("scene.range_m=[10, 50, 100]", r"scene\.range_m must be a list of 2 numbers"),
        ("scene.range_m=10,190", r"scene\.range_m must be a list of 2 numbers, got '10,190'"),
        ("scene.range_m=[10, 'far']", r"scene\.range_m must be a number, got 'far'"),
        ("array.impairment=3", r"array\.impairment must be a string, got 3"),
    ],
)
def test_wrong_types_are_rejected_with_the_key_named(override, match):
    with pytest.raises(ConfigError, match=match):
        load(override)


@pytest.mark.parametrize("key", ["array.impairment_seed", "run.seed"])
def test_seeds_must_be_non_negative(key):
    with pytest.raises(ConfigError, match=re.escape(f"{key} must be an integer >= 0 and <= {2**53}, got -1")):
        load(f"{key}=-1")
    assert load(f"{key}=0").get(key) == 0
    assert load(f"{key}={2**40}").get(key) == 2**40


def test_wrong_type_in_a_toml_file(tmp_path):
    path = write(tmp_path, '[ofdm]\nsubcarriers = "many"\n')
    with pytest.raises(ConfigError, match=r"ofdm\.subcarriers must be an integer, got 'many'"):
        load(path=path)
    path = write(tmp_path, "array = 3\n", "flat.toml")
    with pytest.raises(ConfigError, match=r"\[array\] must be a table"):
        load(path=path)


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("array.antenas=32", "array.antennas"),
        ("arry.antennas=32", "array.antennas"),  # misspelt section
        ("reciever.p_fa=0.1", "receiver.p_fa"),
        ("scene.snr_sensing=10", "scene.snr_sensing_db"),
        ("antennas=32", "array.antennas"),  # section missing
        ("run.frame=10", "run.frames"),
    ],
)
def test_unknown_key_suggests_the_closest_valid_key(override, suggestion):
    with pytest.raises(ConfigError) as exc:
        load(override)
    msg = str(exc.value)
    key = override.split("=")[0]
    assert f"unknown config key '{key}'" in msg
    assert f"did you mean '{suggestion}'" in msg


def test_unknown_key_without_a_close_match_has_no_bogus_suggestion():
    with pytest.raises(ConfigError) as exc:
        load("array.zzzzzzzz=1")
    assert "unknown config key 'array.zzzzzzzz'" in str(exc.value)
    assert "did you mean" not in str(exc.value)


def test_unknown_key_and_section_in_a_toml_file(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'array\.antennas'"):
        load(path=write(tmp_path, "[array]\nantenas = 32\n"))
    with pytest.raises(ConfigError, match=r"did you mean 'receiver\.p_fa'"):
        load(path=write(tmp_path, "[recevier]\np_fa = 0.1\n", "b.toml"))
    with pytest.raises(ConfigError, match=r"unknown config section 'recevier'; did you mean '\[receiver\]'"):
        load(path=write(tmp_path, "[recevier]\n", "c.toml"))


def test_set_without_equals_sign():
    with pytest.raises(ConfigError, match="--set expects key=value, got 'array.antennas'"):
        load("array.antennas")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- scenario hash --------------------------------------------------------------------

PHYSICAL_CHANGES = [
    "array.antennas=32",
    "array.spacing_std_m=1e-4",
    "array.impairment_seed=2",
    "array.impairment=cumulative",
    "ofdm.spacing_hz=60e3",
    "scene.snr_sensing_db=10",
    "scene.target_sector_deg=[-20, 20]",
    "transmitter.eta=1",
    "receiver.angle_grid=360",
    "receiver.p_fa=0.05",
    # the element impairment models (model/impairments.py): hashed only when not "off"
    "array.gain_std_db=1",
    "array.phase_std_deg=10",
    "array.coupling_taps=2",
    "array.coupling_db=-15",
    "array.dead_elements=3",
    "array.dead_list=[4]",
    "array.weak_gain=0.1",
]


def test_hash_is_stable_across_loads(tmp_path):
    h = Scenario.default().hash()
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert load().hash() == h
    # same values written differently (integer literals, key order, explicit defaults)
    path = write(
        tmp_path,
        """
[scene]
range_m = [10, 190]
snr_sensing_db = 15
[array]
impairment = "spacing"
antennas = 64
""",
    )
    assert load(path=path).hash() == h
    s = load("array.antennas=32")
    assert load("array.antennas=32").hash() == s.hash()
    assert Scenario.load(write(tmp_path, s.to_toml(), "dump.toml")).hash() == s.hash()


@pytest.mark.parametrize("override", PHYSICAL_CHANGES)
def test_hash_changes_with_a_physical_key(override):
    assert load(override).hash() != Scenario.default().hash()


def test_physical_changes_give_distinct_hashes():
    hashes = {load(o).hash() for o in PHYSICAL_CHANGES}
    assert len(hashes) == len(PHYSICAL_CHANGES)


def test_default_hash_is_unchanged_by_the_element_impairment_keys(tmp_path):
    """The element impairment keys enter the hash only when they differ from their "off"
    defaults (config_schema.Key.hash_default): the default scenario keeps the hash that the
    shipped weights record, also with the defaults written out, and so does any scenario that
    does not use them."""
    assert Scenario.default().hash() == "321bd814ba1ac987"
    explicit = write(
        tmp_path,
        "[array]\ngain_std_db = 0.0\nphase_std_deg = 0\ncoupling_taps = 0\n"
        "coupling_db = -20\ndead_elements = 0\ndead_list = []\nweak_gain = 0.0\n",
    )
    assert load(path=explicit).hash() == "321bd814ba1ac987"
    assert load("array.antennas=32").hash() == load("array.antennas=32", "array.dead_list=[]").hash()
    # turning a model on, or changing a parameter of one, changes the hash
    on = load("array.gain_std_db=1")
    assert on.hash() != Scenario.default().hash()
    assert on.hash(("array", "ofdm")) != Scenario.default().hash(("array", "ofdm"))
    assert load("array.gain_std_db=1", "array.coupling_db=-15").hash() != on.hash()


def test_hash_ignores_run_keys():
    h = Scenario.default().hash()
    assert load("run.frames=7", "run.calibration_frames=9", "run.seed=123", "run.batch=3").hash() == h


# --- TOML round trip ------------------------------------------------------------------


def test_to_toml_round_trip(tmp_path):
    s = load(
        "array.antennas=17",
        "array.spacing_std_m=1.5e-4",
        "array.impairment=cumulative",
        "ofdm.spacing_hz=240e3",
        "scene.range_m=[12.5, 300]",
        "scene.snr_sensing_db=-3.25",
        "transmitter.phi_rad=0.7853981633974483",
        "receiver.p_fa=1e-4",
        "run.seed=42",
    )
    text = s.to_toml()
    back = Scenario.load(write(tmp_path, text))
    assert back.to_dict() == s.to_dict()
    assert back.hash() == s.hash()
    assert back.to_toml() == text
    # every section and key is written
    for section, keys in DEFAULTS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert re.search(rf"^{key} = ", text, re.M), key


def test_default_to_toml_round_trip(tmp_path):
    s = Scenario.default()
    assert Scenario.load(write(tmp_path, s.to_toml())).to_dict() == s.to_dict() == DEFAULTS


# --- docs/config.md stays in sync with DEFAULTS (generated from the schema: test_config_schema.py) ---

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_docs_list_every_key_in_its_section():
    text = DOC.read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    for section, keys in DEFAULTS.items():
        body = [b for b in sections if b.startswith(f"`[{section}]`")]
        assert len(body) == 1, f"docs/config.md has no '### `[{section}]`' heading"
        documented = re.findall(r"^\| `(\w+)` \|", body[0], re.M)
        assert documented == list(keys), section


def test_docs_defaults_match_the_code():
    text = DOC.read_text()
    for section, keys in DEFAULTS.items():
        for key, default in keys.items():
            row = re.search(rf"^\| `{key}` \|[^|]*\|[^|]*\| `([^`]+)`", text, re.M)
            assert row, key
            assert Scenario.load(None, [f"{section}.{key}={row.group(1)}"]).get(f"{section}.{key}") == default, key


def test_docs_example_toml_loads(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        s = Scenario.load(write(tmp_path, block))
        assert s.scene["target_sector_deg"] == [-20.0, 20.0]
        assert s.run["frames"] == 400


# --- the element impairment models (model/impairments.py) ----------------------------------------


@pytest.mark.parametrize(
    "override, match",
    [
        ("array.gain_std_db=-1", r"array\.gain_std_db must be in \[0, 10\] \(dB\), got -1\.0"),
        ("array.gain_std_db=nan", r"array\.gain_std_db must be in \[0, 10\] \(dB\), got nan"),
        ("array.gain_std_db=40", r"array\.gain_std_db must be in \[0, 10\] \(dB\), got 40\.0"),
        ("array.phase_std_deg=-5", r"array\.phase_std_deg must be in \[0, 180\] \(degrees\), got -5\.0"),
        ("array.phase_std_deg=inf", r"array\.phase_std_deg must be in \[0, 180\] \(degrees\), got inf"),
        ("array.coupling_db=0", r"array\.coupling_db must be in \[-100, 0\) \(dB\), got 0\.0"),
        ("array.coupling_db=3", r"array\.coupling_db must be in \[-100, 0\) \(dB\), got 3\.0"),
        ("array.coupling_db=-inf", r"array\.coupling_db must be in \[-100, 0\) \(dB\), got -inf"),
        ("array.coupling_taps=-1", r"array\.coupling_taps must be an integer >= 0 and <= 8, got -1"),
        ("array.coupling_taps=9", r"array\.coupling_taps must be an integer >= 0 and <= 8, got 9"),
        (
            "array.dead_elements=-1",
            r"array\.dead_elements must be an integer >= 0 and <= array\.antennas - 1 = 63, got -1",
        ),
        (
            "array.dead_elements=64",
            r"array\.dead_elements must be an integer >= 0 and <= array\.antennas - 1 = 63, got 64",
        ),
        (
            "array.dead_list=[64]",
            r"array\.dead_list must be a list of distinct integers >= 0 and <= array\.antennas - 1 = 63, "
            r"at most that many, got \[64\]",
        ),
        ("array.dead_list=[-1]", r"array\.dead_list must be a list of distinct integers .* got \[-1\]"),
        ("array.dead_list=[3, 3]", r"array\.dead_list must be a list of distinct integers .* got \[3, 3\]"),
        ("array.dead_list=3", r"array\.dead_list must be a list of integers, got 3"),
        ("array.dead_list=[1.5]", r"array\.dead_list entry must be an integer, got 1\.5"),
        ("array.weak_gain=1", r"array\.weak_gain must be in \[0, 1\), got 1\.0"),
        ("array.weak_gain=-0.1", r"array\.weak_gain must be in \[0, 1\), got -0\.1"),
    ],
)
def test_element_impairment_keys_refuse_bad_values_naming_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load(override)


def test_element_impairment_cross_key_rules():
    # more dead elements than K - 1 (at least one element must live), as a count or a list
    with pytest.raises(ConfigError, match=r"array\.dead_elements must be .* <= array\.antennas - 1 = 3, got 4"):
        load("array.antennas=4", "array.dead_elements=4")
    with pytest.raises(
        ConfigError,
        match=r"array\.dead_list must be .* array\.antennas - 1 = 3, at most that many, "
        r"got \[0, 1, 2, 3\]",
    ):
        load("array.antennas=4", "array.dead_list=[0, 1, 2, 3]")
    assert load("array.antennas=4", "array.dead_list=[0, 1, 3]").array["dead_list"] == [0, 1, 3]
    assert load("array.antennas=4", "array.dead_elements=3").array["dead_elements"] == 3
    # a count and a list at once
    with pytest.raises(ConfigError, match=r"array\.dead_elements = 2 and array\.dead_list = \[1\] are exclusive"):
        load("array.dead_elements=2", "array.dead_list=[1]")
    # more coupling taps than neighbour distances
    with pytest.raises(ConfigError, match=r"array\.coupling_taps must be <= array\.antennas - 1 = 3 .* got 5"):
        load("array.antennas=4", "array.coupling_taps=5")
    assert load("array.antennas=4", "array.coupling_taps=3").array["coupling_taps"] == 3


def test_element_impairment_keys_round_trip_through_toml(tmp_path):
    s = load(
        "array.gain_std_db=1.5",
        "array.phase_std_deg=20",
        "array.coupling_taps=2",
        "array.coupling_db=-12",
        "array.dead_list=[5, 1]",
        "array.weak_gain=0.25",
    )
    back = Scenario.load(write(tmp_path, s.to_toml()))
    assert back.to_dict() == s.to_dict() and back.hash() == s.hash()
    assert back.array["dead_list"] == [5, 1] and back.array["coupling_db"] == -12.0
