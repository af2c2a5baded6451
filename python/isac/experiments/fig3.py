"""Fig. 3: angle-delay maps L = |Phi_a^H Y~ Phi_d^*|^2 (Alg. 1, line 5) of one frame with T = 4
fixed targets at SNR_r = 20 dB, for the ideal array and for the impaired array (Example 1),
both seen by the nominal receiver (the baseline dictionaries (8) on the a-priori sector) and
both normalised to the maximum of the ideal map (as the caption of Fig. 3 says).

Targets (chosen like Fig. 3): two close in angle at nearly the same range (3.5 deg apart,
above the ideal resolution 2/K rad / cos(theta) ~ 2.1 deg, so the ideal map resolves them and
the widened impaired lobes merge them), one alone, and one at the highest range. Every
target has |psi| = sigma_r (SNR_r = K sigma_r^2 / N0), with fixed phases; both frames use the
same seed, so the same symbols and noise: only the array differs.

Lobe measurements per target (on the angle cut through the target's range, the maximum over
the nearest delay cell and its two neighbours): the local peak within +-LOBE_SEARCH_DEG of the
true angle (dB re the ideal map maximum), its angle, and the width of the contiguous region
within 3 dB of that peak. The close pair is merged in a map when the lobe peaks found for its
two targets are closer than the angle resolution (16).
"""

from __future__ import annotations

import numpy as np

from ..model.angle_delay import angle_delay_map
from ..model.array import scenario_nominal_array
from ..model.dictionaries import omp_dictionaries
from ..model.grids import delay_to_range
from ..model.reciprocal import reciprocal_filter
from ..model.scene import fixed_scene, sensing_gain_variance
from ..simulation import Simulator
from .common import Context, pyplot, save_figure, write_csv

TARGET_ANGLES_DEG = (-34.5, -31.0, -24.0, -37.0)
TARGET_RANGES_M = (80.0, 82.0, 40.0, 185.0)
TARGET_PHASES_RAD = (0.3, 1.9, 4.0, 5.2)
CLOSE_PAIR = (0, 1)
LOBE_SEARCH_DEG = 4.0
FLOOR_DB = -30.0

DEFAULTS = {"scene.snr_sensing_db": 20.0, "transmitter.eta": 1.0}
QUICK: dict = {}  # one frame: the quick run is the full run

COLUMNS = ("target", "angle_deg", "range_m", "array", "peak_db", "peak_angle_deg", "width_3db_deg")


def maps(ctx: Context):
    """(L_ideal, L_impaired) normalised to max(L_ideal), angles (deg), ranges (m), scene."""
    sc = ctx.scenario
    ideal = sc.with_overrides({"array.spacing_std_m": 0.0})
    sigma_r = np.sqrt(sensing_gain_variance(sc.scene["snr_sensing_db"], sc.array["antennas"], sc.scene["noise_power"]))
    scene = fixed_scene(TARGET_ANGLES_DEG, TARGET_RANGES_M, gains=sigma_r * np.exp(1j * np.array(TARGET_PHASES_RAD)))
    D = omp_dictionaries(sc, scenario_nominal_array(sc))  # the nominal receiver in both cases
    out = []
    for s in (ideal, sc):  # the true array differs; the transmitter is the nominal baseline in both
        frames = Simulator(s, scene=scene).frames(0, 1, "test")
        out.append(
            angle_delay_map(reciprocal_filter(frames.y_sensing, frames.symbols), D.phi_a, D.phi_d)[0].astype(np.float64)
        )
    norm = out[0].max()
    return out[0] / norm, out[1] / norm, np.rad2deg(D.angles_rad), delay_to_range(D.delays_s), scene


def _cut(L, ranges, range_m):
    j = int(np.argmin(np.abs(ranges - range_m)))
    return L[:, max(j - 1, 0) : j + 2].max(axis=1)


def lobe(L, angles, ranges, angle_deg, range_m) -> dict:
    """Peak (dB re the ideal maximum), its angle and the 3 dB width of the lobe nearest a target."""
    cut = _cut(L, ranges, range_m)
    i = int(np.argmax(np.where(np.abs(angles - angle_deg) <= LOBE_SEARCH_DEG, cut, -np.inf)))
    above = cut >= cut[i] / 2
    lo = hi = i
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < len(cut) - 1 and above[hi + 1]:
        hi += 1
    return {
        "peak_db": float(10 * np.log10(cut[i])),
        "peak_angle_deg": float(angles[i]),
        "width_3db_deg": float(angles[hi] - angles[lo]),
    }


def close_pair(per_target: list[dict], antennas: int) -> dict:
    """Separation of the lobe peaks found for the two close targets, per map. The pair is
    merged when both targets lead to (nearly) the same lobe: peaks closer than the angle
    resolution 2/K rad / cos(theta) of eq. (16) at the pair's mean angle."""
    i, j = CLOSE_PAIR
    theta = np.deg2rad(0.5 * (TARGET_ANGLES_DEG[i] + TARGET_ANGLES_DEG[j]))
    resolution = float(np.rad2deg(2.0 / antennas / np.cos(theta)))
    out = {"true_separation_deg": abs(TARGET_ANGLES_DEG[i] - TARGET_ANGLES_DEG[j]), "resolution_deg": resolution}
    for name in ("ideal", "impaired"):
        sep = abs(per_target[i][name]["peak_angle_deg"] - per_target[j][name]["peak_angle_deg"])
        out[name] = {"peak_separation_deg": sep, "merged": bool(sep < resolution)}
    return out


def plot(path, L_ideal, L_imp, angles, ranges, scene) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    extent = [angles[0], angles[-1], ranges[0], ranges[-1]]
    for ax, L, title in (
        (axes[0], L_ideal, "ideal array"),
        (axes[1], L_imp, "impaired array (Example 1), nominal receiver"),
    ):
        img = ax.imshow(
            np.maximum(10 * np.log10(np.maximum(L, 1e-12)), FLOOR_DB).T,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="viridis",
            vmin=FLOOR_DB,
            vmax=0.0,
        )
        ax.scatter(
            np.rad2deg(scene.angles_rad),
            scene.ranges_m,
            s=90,
            facecolors="none",
            edgecolors="w",
            linewidths=1.4,
            label="true targets",
        )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("angle (deg)")
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel("range (m)")
    fig.colorbar(img, ax=axes, label="dB re maximum of the ideal map", fraction=0.025)
    save_figure(fig, path, "Fig. 3: angle-delay map, T = 4 targets, SNR_r = 20 dB", tight_bbox=True)


def run(ctx: Context) -> dict:
    L_ideal, L_imp, angles, ranges, scene = maps(ctx)
    rows, per_target = [], []
    for t, (a, r) in enumerate(zip(TARGET_ANGLES_DEG, TARGET_RANGES_M)):
        pair = {}
        for name, L in (("ideal", L_ideal), ("impaired", L_imp)):
            m = lobe(L, angles, ranges, a, r)
            pair[name] = m
            rows.append(dict(target=t, angle_deg=a, range_m=r, array=name, **m))
        per_target.append({"angle_deg": a, "range_m": r, **pair})
    write_csv(ctx.path("fig3.csv"), rows, COLUMNS)
    np.savez_compressed(
        ctx.path("fig3_maps.npz"),
        ideal=L_ideal.astype(np.float32),
        impaired=L_imp.astype(np.float32),
        angles_deg=angles,
        ranges_m=ranges,
    )
    plot(ctx.path("fig3.png"), L_ideal, L_imp, angles, ranges, scene)
    return {
        "targets": per_target,
        "close_pair_lobes": close_pair(per_target, ctx.scenario.array["antennas"]),
        "impaired_max_db": float(10 * np.log10(L_imp.max())),
        "mean_peak_loss_db": float(np.mean([p["ideal"]["peak_db"] - p["impaired"]["peak_db"] for p in per_target])),
        "mean_width_ratio": float(
            np.mean([p["impaired"]["width_3db_deg"] / p["ideal"]["width_3db_deg"] for p in per_target])
        ),
    }
