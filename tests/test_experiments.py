"""isac-eval --experiment fig3 | fig7 | fig8 | fig9 | fig5 | fig6 | crb (python/isac/experiments): each runs with
--quick into a temporary folder, writes well-formed CSV / PNG / JSON, is deterministic, and
the direction of the paper's claims holds. The CRB is checked against a numerical Fisher
information (finite differences of the mean of the model)."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gnuradio.isac import experiments
from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.config import SPEED_OF_LIGHT, Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.experiments import crb, fig3, learned, sweep, tradeoff
from gnuradio.isac.experiments.common import wilson_interval
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.transceiver import save_weights

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(out, name, *extra):
    return isac_eval.main(
        ["--experiment", name, "--out", str(out), "--quick", "--no-progress", "--workers", "1", *extra]
    )


@pytest.fixture(scope="module")
def results(quick_experiments):
    """Each experiment once, --quick, through the command line (conftest.quick_experiments)."""
    return quick_experiments


def load(folder, name):
    summary = json.loads((folder / f"{name}.json").read_text())
    with open(folder / f"{name}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return summary, rows


def check_files(folder, name, columns):
    for ext in ("csv", "png", "json"):
        assert (folder / f"{name}.{ext}").stat().st_size > 0
    assert (folder / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    summary, rows = load(folder, name)
    assert summary["experiment"] == name and summary["quick"] is True
    assert summary["seconds"] > 0 and summary["kernel"] in ("numpy", "cpp")
    assert set(summary["files"]) >= {f"{name}.csv", f"{name}.png", f"{name}.json"}
    assert summary["scenario_hash"] == Scenario.from_dict(summary["scenario"]).hash()
    assert summary["command"].startswith(f"isac-eval --experiment {name} ")
    assert rows and list(rows[0]) == list(columns)
    return summary, rows


def floats(rows, key):
    return np.array([float(r[key]) for r in rows])


# --- fig3 ------------------------------------------------------------------------------------


def test_fig3_impaired_lobes_are_lower_wider_and_merge_the_close_pair(results):
    summary, rows = check_files(results["fig3"], "fig3", fig3.COLUMNS)
    res = summary["results"]
    assert summary["scenario"]["scene"]["snr_sensing_db"] == 20.0
    assert len(rows) == 2 * len(fig3.TARGET_ANGLES_DEG)
    maps = np.load(results["fig3"] / "fig3_maps.npz")
    assert maps["ideal"].max() == pytest.approx(1.0)  # both normalised to the ideal maximum
    assert maps["impaired"].shape == maps["ideal"].shape
    for t in res["targets"]:
        ideal, imp = t["ideal"], t["impaired"]
        assert abs(ideal["peak_angle_deg"] - t["angle_deg"]) < 0.5  # the ideal map finds every target
        assert imp["peak_db"] < ideal["peak_db"] - 3.0  # lower lobes ...
        assert imp["width_3db_deg"] >= ideal["width_3db_deg"]  # ... and wider
    assert res["mean_width_ratio"] > 1.1
    pair = res["close_pair_lobes"]
    assert not pair["ideal"]["merged"] and pair["impaired"]["merged"]


def test_fig3_is_deterministic(results, tmp_path):
    assert run_cli(tmp_path, "fig3") == 0
    assert (tmp_path / "fig3.csv").read_bytes() == (results["fig3"] / "fig3.csv").read_bytes()


# --- fig7 / fig8 -----------------------------------------------------------------------------


def check_curves(rows, methods):
    assert sorted({r["method"] for r in rows}) == sorted(methods)
    for m in methods:
        rr = [r for r in rows if r["method"] == m]
        thr = floats(rr, "threshold")
        assert np.all(np.diff(thr) < 0)  # larger target p_fa -> lower threshold
        # one OMP run per test frame scored at every threshold: exactly monotone curves
        assert np.all(np.diff(floats(rr, "p_fa")) >= 0)
        assert np.all(np.diff(floats(rr, "p_md")) <= 0)
        for key in ("p_fa", "p_md", "gospa"):
            v, lo, hi = floats(rr, key), floats(rr, f"{key}_lo"), floats(rr, f"{key}_hi")
            assert np.all(lo <= v + 1e-12) and np.all(v <= hi + 1e-12)
        p_fa = floats(rr, "p_fa")
        assert p_fa.min() <= 5e-3 and p_fa.max() >= 0.2  # the sweep spans ~1e-3 .. 0.5


def test_fig7_domp_close_to_omp_with_perfect_knowledge(results):
    summary, rows = check_files(results["fig7"], "fig7", sweep.COLUMNS)
    sc = summary["scenario"]
    assert sc["transmitter"]["eta"] == 1.0 and sc["scene"]["max_targets"] == 5
    check_curves(rows, ["omp_perfect", "domp_perfect"])
    at = summary["results"]["at_p_fa_1e-2"]
    assert abs(summary["results"]["delta_p_md_domp_minus_omp"]) < 0.05
    assert abs(at["domp_perfect"]["gospa"] - at["omp_perfect"]["gospa"]) < 5.0
    for m in at.values():  # perfect knowledge: the notes' order of magnitude (p_md ~ 0.07)
        assert m["p_md"] < 0.15


def test_fig7_operating_point_equals_isac_eval(results):
    """The p_fa = 1e-2 point is evaluate()'s calibration and scoring on the same frames."""
    summary, _ = load(results["fig7"], "fig7")
    sc = Scenario.from_dict(summary["scenario"])
    want = evaluate(sc, "perfect", progress=False, receiver="omp", kernel=summary["kernel"])
    got = summary["results"]["at_p_fa_1e-2"]["omp_perfect"]
    assert got["threshold"] == pytest.approx(want["threshold"], rel=1e-6)
    for key in ("p_md", "p_fa", "gospa"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12)


def test_fig7_does_not_depend_on_the_batch_size(results, tmp_path):
    assert run_cli(tmp_path, "fig7", "--set", "run.batch=64") == 0
    a, _ = load(results["fig7"], "fig7")
    b, _ = load(tmp_path, "fig7")
    assert a["results"]["at_p_fa_1e-2"] == b["results"]["at_p_fa_1e-2"]


def test_fig8_perfect_knowledge_and_shipped_weights_beat_the_baseline_by_far(results):
    """Fig. 8 without --weights: the impairment-learning curve comes from the module's shipped
    weights (isac-train --quick); it and perfect knowledge are far better than the baseline,
    and the learned curve lands near perfect knowledge."""
    summary, rows = check_files(results["fig8"], "fig8", sweep.COLUMNS)
    check_curves(rows, ["baseline", "domp_perfect", "learned"])
    at = summary["results"]["at_p_fa_1e-2"]
    base, perf, learned_ = at["baseline"], at["domp_perfect"], at["learned"]
    assert base["p_md"] > 4 * perf["p_md"] and base["p_md_lo"] > perf["p_md_hi"]
    assert base["gospa"] > 3 * perf["gospa"] and base["gospa_lo"] > perf["gospa_hi"]
    assert learned_["p_md"] < base["p_md"] / 4 and learned_["gospa"] < base["gospa"] / 3
    assert learned_["p_md"] < perf["p_md"] + 0.1
    assert summary["results"]["weights_source"]["source"] == "shipped"
    assert Path(summary["results"]["weights"]).name == "impairment_default.safetensors"


def test_fig8_weights_hook(results, tmp_path, capsys):
    assert run_cli(tmp_path / "a", "fig8", "--weights", str(tmp_path / "missing.safetensors")) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert run_cli(tmp_path / "b", "fig7", "--weights", str(tmp_path / "w.safetensors")) == 2
    assert "fig8 only" in capsys.readouterr().err
    from gnuradio.isac.model.grids import full_angle_grid

    # weights holding the TRUE spacings: the learned curve must land near perfect knowledge
    summary, _ = load(results["fig8"], "fig8")
    sc = Scenario.from_dict(summary["scenario"])
    arr = true_array(sc)
    path = tmp_path / "true.safetensors"
    save_weights(
        path,
        sc,
        "impairment",
        {
            "spacings_m": arr.spacings_m,
            "positions_m": arr.positions_m,
            "angle_grid_rad": full_angle_grid(sc.transmitter["beam_grid"]),
        },
        steps=0,
    )
    assert run_cli(tmp_path / "c", "fig8", "--weights", str(path)) == 0
    learned, rows = load(tmp_path / "c", "fig8")
    assert {r["method"] for r in rows} == {"baseline", "domp_perfect", "learned"}
    at = learned["results"]["at_p_fa_1e-2"]
    assert at["learned"]["p_md"] < at["baseline"]["p_md"] / 3


# --- fig9 / fig5 / fig6: trade-offs vs SER -------------------------------------------------------------


def nfloats(rows, key):
    """floats(), with the CSV's empty cells (an undefined metric, e.g. RMSE without a match) as NaN."""
    return np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])


def check_tradeoff(rows, methods, etas, phis):
    assert [m for m in dict.fromkeys(r["method"] for r in rows)] == list(methods)
    for m in methods:
        rr = [r for r in rows if r["method"] == m]
        got = [(float(r["eta"]), float(r["phi_rad"])) for r in rr]
        assert np.allclose(got, [(e, p) for e in etas for p in phis], rtol=1e-7)  # CSV: 8 digits
        for key in ("p_md", "gospa", "ser", "angle_rmse", "range_rmse"):
            v = nfloats(rr, {"angle_rmse": "angle_rmse_deg", "range_rmse": "range_rmse_m"}.get(key, key))
            lo, hi = nfloats(rr, f"{key}_lo"), nfloats(rr, f"{key}_hi")
            ok = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
            assert np.all(lo[ok] <= v[ok] + 1e-12) and np.all(v[ok] <= hi[ok] + 1e-12)
        assert np.all((floats(rr, "ser") >= 0) & (floats(rr, "ser") <= 1))


def test_fig9_impairment_learning_beats_the_baseline_at_every_eta(results):
    """Fig. 9 with the shipped impairment-learning weights: lower GOSPA than the baseline at
    every eta of the quick sweep (robust: about 20 m against 70 m), and perfect knowledge too.
    Baseline and perfect knowledge share the baseline transmitter, so their SER is identical."""
    summary, rows = check_files(results["fig9"], "fig9", tradeoff.COLUMNS)
    etas, phis = tradeoff.SWEEPS["fig9"][1]
    check_tradeoff(rows, ["baseline", "perfect", "impairment"], etas, phis)
    assert summary["scenario"]["scene"]["max_targets"] == 5
    assert Path(summary["results"]["weights"]).name == "impairment_default.safetensors"
    by = {m: [r for r in rows if r["method"] == m] for m in ("baseline", "perfect", "impairment")}
    g = {m: floats(v, "gospa") for m, v in by.items()}
    assert np.all(g["impairment"] < g["baseline"] - 10) and np.all(g["perfect"] < g["baseline"] - 10)
    assert np.all(floats(by["impairment"], "gospa_hi") < floats(by["baseline"], "gospa_lo"))
    assert np.array_equal(floats(by["baseline"], "ser"), floats(by["perfect"], "ser"))
    for m in by:  # less communication power as eta grows: the SER at eta = 1 is the largest
        assert floats(by[m], "ser")[-1] > floats(by[m], "ser")[0]
    assert all(v > 10 for v in summary["results"]["gospa_baseline_minus_impairment"].values())


def test_fig9_point_equals_isac_eval(results):
    """A sweep point is evaluate()'s calibration and scoring at that (eta, phi)."""
    summary, rows = load(results["fig9"], "fig9")
    r = [r for r in rows if r["method"] == "baseline"][-1]
    sc = Scenario.from_dict(summary["scenario"]).with_overrides(
        {"transmitter.eta": float(r["eta"]), "transmitter.phi_rad": float(r["phi_rad"])}
    )
    want = evaluate(sc, "baseline", progress=False, receiver="omp", kernel=summary["kernel"])
    assert float(r["threshold"]) == pytest.approx(want["threshold"], rel=1e-6)
    for key in ("p_md", "p_fa", "gospa", "ser"):
        assert float(r[key]) == pytest.approx(want[key], rel=1e-6, abs=1e-9)


def test_fig5_plumbing_weights_and_parameter_counts(results):
    """Fig. 5 at --quick: plumbing and shapes only. The dictionary and NNBL weights come from a
    tiny on-the-fly training (learned.TINY_STEPS steps), far from trained, so the paper's
    ordering of the learned methods cannot show here; the parameter counts are the paper's
    (dictionary 46,080 / 9,984 complex, impairment K = 64) and the trainer's (NNBL)."""
    summary, rows = check_files(results["fig5"], "fig5", tradeoff.COLUMNS)
    etas, phis = tradeoff.SWEEPS["fig5"][1]
    keys = ["baseline", "impairment", "dictionary", "dictionary_limited", "nn", "nn_limited"]
    check_tradeoff(rows, keys, etas, phis)
    sc = summary["scenario"]
    assert sc["scene"]["max_targets"] == 1 and sc["scene"]["target_sector_deg"] == [-40.0, -20.0]
    methods = summary["results"]["methods"]
    assert methods["impairment"]["parameters"] == {"real": 64}
    assert methods["dictionary"]["parameters"] == {"complex": 46080}
    assert methods["dictionary_limited"]["parameters"] == {"complex": 9984}
    assert methods["nn"]["parameters"]["real"] > 1_000_000 > 20_000 > methods["nn_limited"]["parameters"]["real"]
    assert methods["impairment"]["weights"]["source"] in ("shipped", "cached")
    for key in keys[2:]:
        w = methods[key]["weights"]
        assert w["source"] == "trained" and w["tiny"] is True and w["steps"] <= learned.TINY_STEPS
        assert Path(w["path"]) == results["fig5"] / "weights-quick" / learned.WEIGHT_FILES[key]
    # single target: at worst one miss and one false target per frame, GOSPA (17) <= gamma = 90 m
    assert np.all(floats(rows, "gospa") <= 90.0 + 1e-6)


def test_single_target_threshold_does_not_depend_on_the_precoder(results):
    """fig5 / fig6 calibrate once per method (tradeoff.single_target_threshold): with T_max = 1
    only target-free frames can false-alarm, and their echo is the same noise whatever the
    precoder. Checked with a full calibration at two far-apart (eta, phi) per method."""
    from gnuradio.isac.evaluation import calibrate
    from gnuradio.isac.experiments.common import Context
    from gnuradio.isac.simulation import Simulator
    from gnuradio.isac.transceiver import build

    summary, rows = load(results["fig5"], "fig5")
    sc = Scenario.from_dict(summary["scenario"])
    ctx = Context("fig5", sc, str(results["fig5"]), quick=True, kernel=summary["kernel"])
    for key in ("baseline", "impairment", "nn_limited"):
        m = summary["results"]["methods"][key]
        path = (m["weights"] or {}).get("path")
        weights = ctx.load_weights(path, m["method"]) if path else None
        tr = build(sc, m["method"], weights, m["receiver"], ctx.kernel, ctx.temperature)
        got = []
        for eta, phi in ((0.0, 0.0), (1.0, math.pi)):
            point = sc.with_overrides({"transmitter.eta": eta, "transmitter.phi_rad": phi})
            got.append(calibrate(point, Simulator(point, precoder=tr.precoder(point)), tr.receiver, False))
        assert got[0] == got[1], key
        csv_thresholds = [float(r["threshold"]) for r in rows if r["method"] == key]
        assert csv_thresholds == pytest.approx([got[0]] * len(csv_thresholds), rel=1e-7)


def test_fig5_reuses_its_cached_weights(results):
    """A rerun into the same folder takes the weights trained by the first run."""
    from gnuradio.isac.experiments.common import Context

    summary, _ = load(results["fig5"], "fig5")
    ctx = Context("fig5", Scenario.from_dict(summary["scenario"]), str(results["fig5"]), quick=True)
    for key in ("dictionary", "nn_limited"):
        w = learned.resolve_weights(ctx, key)
        assert w == {"path": summary["results"]["methods"][key]["weights"]["path"], "source": "cached"}


def test_fig6_unseen_sector_with_fig5_weights(results):
    """Fig. 6 at --quick with fig5's weights (--weights-dir): plumbing only (tiny weights)."""
    summary, rows = check_files(results["fig6"], "fig6", tradeoff.COLUMNS)
    etas, phis = tradeoff.SWEEPS["fig6"][1]
    check_tradeoff(rows, ["baseline", "impairment", "dictionary", "nn"], etas, phis)
    assert summary["scenario"]["scene"]["target_sector_deg"] == [-20.0, 20.0]
    methods = summary["results"]["methods"]
    for key in ("dictionary", "nn"):
        assert methods[key]["weights"]["source"] == "weights-dir"
    assert "--weights-dir" in summary["command"]


def test_tradeoff_options(tmp_path, capsys):
    assert run_cli(tmp_path / "a", "fig5", "--weights", str(tmp_path / "w.safetensors")) == 2
    assert "--weights-dir" in capsys.readouterr().err
    assert run_cli(tmp_path / "b", "fig7", "--weights-dir", str(tmp_path)) == 2
    assert "fig5 and fig6 only" in capsys.readouterr().err
    assert run_cli(tmp_path / "c", "fig5", "--weights-dir", str(tmp_path / "nope")) == 2
    assert "no such folder" in capsys.readouterr().err
    assert run_cli(tmp_path / "d", "fig9", "--weights", str(tmp_path / "missing.safetensors")) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        isac_eval.main(["--weights-dir", str(tmp_path)])
    assert "--weights-dir needs --experiment" in capsys.readouterr().err
    assert tradeoff.pareto(
        [{"ser": 0.1, "p_md": 0.5}, {"ser": 0.2, "p_md": 0.6}, {"ser": 0.3, "p_md": 0.1}, {"ser": 0.0, "p_md": 0.9}],
        "p_md",
    ) == [{"ser": 0.0, "p_md": 0.9}, {"ser": 0.1, "p_md": 0.5}, {"ser": 0.3, "p_md": 0.1}]


# --- crb -------------------------------------------------------------------------------------


def numerical_fisher(positions, lam, theta, tau, alpha, S, df, n0):
    """J = (2/N0) Re{dmu^H dmu} by central differences of mu = alpha a(theta) rho(tau)^T."""
    s = np.arange(S)

    def mu(eta):
        th, ta, re, im = eta
        a = np.exp(-2j * np.pi * positions * np.sin(th) / lam)
        rho = np.exp(-2j * np.pi * s * df * ta)
        return ((re + 1j * im) * np.outer(a, rho)).ravel()

    eta = np.array([theta, tau, alpha.real, alpha.imag])
    steps = np.array([1e-7, 1e-13, 1e-7, 1e-7])
    cols = []
    for i, h in enumerate(steps):
        e = np.zeros(4)
        e[i] = h
        cols.append((mu(eta + e) - mu(eta - e)) / (2 * h))
    G = np.stack(cols, axis=1)
    return 2.0 / n0 * np.real(G.conj().T @ G)


@pytest.mark.parametrize("std", [0.0, 2e-4])
def test_crb_closed_form_equals_numerical_fisher_information(std):
    sc = Scenario.load(None, [f"array.spacing_std_m={std}", "array.impairment_seed=3"])
    arr = true_array(sc)
    lam, S, df = sc.wavelength_m, sc.ofdm["subcarriers"], sc.ofdm["spacing_hz"]
    theta, tau, alpha, n0 = math.radians(-27.3), 2 * 73.4 / SPEED_OF_LIGHT, 0.03 * np.exp(0.8j), 1.3
    J = crb.fisher_information(arr.positions_m, lam, theta, tau, alpha, S, df, n0)
    Jn = numerical_fisher(arr.positions_m, lam, theta, tau, alpha, S, df, n0)
    assert np.allclose(J, J.T)
    assert np.allclose(Jn, J, rtol=1e-5, atol=1e-6 * np.abs(J).max())
    v_theta, v_tau = crb.crb_closed_form(arr.positions_m, lam, theta, abs(alpha) ** 2, S, df, n0)
    inv = np.linalg.inv(Jn)
    assert v_theta == pytest.approx(inv[0, 0], rel=1e-4)
    assert v_tau == pytest.approx(inv[1, 1], rel=1e-4)
    if std == 0:  # the textbook ULA bound: var = 6 / (SNR_eff pi^2 cos^2 (K^2 - 1))
        K = arr.antennas
        snr_eff = 2 * abs(alpha) ** 2 * S / n0
        assert v_theta == pytest.approx(12 / (snr_eff * np.pi**2 * math.cos(theta) ** 2 * K * (K * K - 1)))


def test_crb_experiment_bounds_the_rmse(results):
    summary, rows = check_files(results["crb"], "crb", crb.COLUMNS)
    res = summary["results"]
    assert summary["scenario"]["scene"]["max_targets"] == 1
    snr = np.array(res["snr_db"])
    bound_a = np.array([c["crb_angle_deg"] for c in res["crb"]])
    bound_r = np.array([c["crb_range_m"] for c in res["crb"]])
    # std bound proportional to 1/sqrt(SNR): the variance falls 10 dB per decade of SNR
    assert np.allclose(bound_a * 10 ** (snr / 20), bound_a[0] * 10 ** (snr[0] / 20), rtol=1e-9)
    assert np.allclose(bound_r * 10 ** (snr / 20), bound_r[0] * 10 ** (snr[0] / 20), rtol=1e-9)
    # no estimator beats the bound (up to the Monte Carlo interval)
    for r in rows:
        assert float(r["angle_rmse_hi"]) >= float(r["crb_angle_deg"])
        assert float(r["range_rmse_hi"]) >= float(r["crb_range_m"])
    by = {(float(r["snr_db"]), r["method"]): r for r in rows}
    # dOMP (off-grid) approaches the bound at high SNR; OMP's angle too at 20 dB, but its range
    # floors at half the OMP grid step (the target sits midway between two grid points)
    for snr_db in (20.0, 30.0):
        d = by[(snr_db, "domp_perfect")]
        assert float(d["angle_rmse_deg"]) < 1.5 * float(d["crb_angle_deg"])
        assert float(d["range_rmse_m"]) < 1.5 * float(d["crb_range_m"])
    o = by[(20.0, "omp_perfect")]
    assert float(o["angle_rmse_deg"]) < 1.5 * float(o["crb_angle_deg"])
    assert float(by[(30.0, "omp_perfect")]["range_rmse_m"]) == pytest.approx(res["omp_grid_floor"]["range_m"], rel=0.05)
    # the baseline (nominal array) is biased far above the bound
    assert float(by[(20.0, "baseline")]["angle_rmse_deg"]) > 10 * float(by[(20.0, "baseline")]["crb_angle_deg"])


# --- helpers and options ---------------------------------------------------------------------


def test_wilson_interval():
    lo, hi = wilson_interval(0, 100)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.03 < hi < 0.04  # the "rule of three" region
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_experiment_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        isac_eval.main(["--experiment", "fig3"])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        isac_eval.main(["--quick"])
    assert "--quick needs --experiment" in capsys.readouterr().err
    assert run_cli(tmp_path, "fig3", "--set", "scene.snr_sensing_db=nope") == 2
    assert "snr_sensing_db" in capsys.readouterr().err
    # the user's --set wins over the experiment's settings and the --quick sizes
    sc = experiments.experiment_scenario("fig7", None, ["transmitter.eta=0.5", "run.frames=7"], quick=True)
    assert sc.transmitter["eta"] == 0.5 and sc.run["frames"] == 7
    assert sc.run["calibration_frames"] == sweep.QUICK["run.calibration_frames"]
