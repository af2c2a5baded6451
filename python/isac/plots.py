"""Pictures: the angle-delay map of one frame with truth and detections (like Fig. 3)."""

from __future__ import annotations

import numpy as np

from .config import Scenario
from .model.angle_delay import angle_delay_map
from .model.dictionaries import omp_dictionaries
from .model.grids import delay_to_range
from .model.omp import omp
from .model.reciprocal import reciprocal_filter
from .simulation import Simulator
from .transceiver import get


def frame_map(scenario: Scenario, frame: int, method: str = "baseline", stream: str = "test", weights=None):
    """(map L normalised to its maximum, angles_deg, ranges_m, scene, OmpResult) of one frame
    seen by the OMP receiver of ``method`` (learned methods: the loaded ``weights``)."""
    m = get(method, weights)
    if not m.has_array:
        raise ValueError(f"method {method!r} has no array, so no angle-delay map of its own")
    array = m.receive_array(scenario, weights)
    sim = Simulator(scenario, precoder=m.transmitter(scenario, weights).precoder(scenario))
    frames = sim.frames(frame, 1, stream)
    D = omp_dictionaries(scenario, array)
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    L = angle_delay_map(y, D.phi_a, D.phi_d)[0]
    result = omp(y, D, scenario.scene["max_targets"])
    return L / L.max(), np.rad2deg(D.angles_rad), delay_to_range(D.delays_s), frames.scenes[0], result


def draw_frame_map(
    ax,
    scenario: Scenario,
    frame: int,
    threshold: float,
    method: str = "baseline",
    floor_db: float = -30.0,
    title: str | None = None,
    weights=None,
):
    """Draw one frame's map (dB re its maximum) on ``ax`` with true targets (circles) and the
    detections at ``threshold`` (crosses)."""
    L, ang, rng, scene, result = frame_map(scenario, frame, method, weights=weights)
    img = ax.imshow(
        np.maximum(10 * np.log10(np.maximum(L, 1e-12)), floor_db).T,
        origin="lower",
        aspect="auto",
        extent=[ang[0], ang[-1], rng[0], rng[-1]],
        cmap="viridis",
    )
    ax.scatter(
        np.rad2deg(scene.angles_rad),
        scene.ranges_m,
        s=80,
        facecolors="none",
        edgecolors="w",
        linewidths=1.5,
        label="truth",
    )
    det = result.detections(0, threshold)
    ax.scatter(np.rad2deg(det["angle_rad"]), det["range_m"], s=60, marker="x", c="r", label="detections")
    ax.set_xlabel("angle (deg)")
    ax.set_ylabel("range (m)")
    ax.set_title(title or f"frame {frame}, {method} receiver")
    ax.legend(loc="upper right", fontsize=8)
    return img


def save_frame_map(
    path: str, scenario: Scenario, frame: int, threshold: float, method: str = "baseline", weights=None
) -> None:
    """Save the picture of one frame's angle-delay map (PNG, SVG, ... by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    img = draw_frame_map(ax, scenario, frame, threshold, method, weights=weights)
    fig.colorbar(img, ax=ax, label="dB re frame maximum")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
