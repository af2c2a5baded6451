"""The scenario in GNU Radio Companion: what the ISAC Scenario variable block
(grc/isac_scenario.block.yml, generated from the configuration schema by
tools/gen_grc_scenario.py) and the ports of the other blocks evaluate.

The ISAC Scenario block holds one Scenario, like gr-digital's Constellation Object: either its
fields (one parameter per configuration key, id ``section_name``, defaults of Sec. V-A; GRC
checks each against the key's range) or a TOML file. Every other block takes it by id in its
``scenario`` parameter; a block that names none gets the paper's default scenario. Standard
library only, like the configuration: GRC evaluates these while the flowgraph is edited.
"""

from __future__ import annotations

from typing import Any, Mapping

from .config import ConfigError, Scenario
from .config_schema import KEYS

SOURCES = ("fields", "file")


def scenario_of_fields(source: str, config_file: str = "", fields: Mapping[str, Any] | None = None) -> Scenario:
    """The scenario of an ISAC Scenario block: ``source`` "fields" (the paper's defaults with
    ``fields``, configuration key -> value, on top) or "file" (the TOML file ``config_file``).
    ConfigError naming the key and its range (GRC shows it under the block)."""
    if source == "file":
        if not str(config_file).strip():
            raise ConfigError("ISAC Scenario: source 'file' needs a scenario file (TOML)")
        return Scenario.load(str(config_file))
    if source != "fields":
        raise ConfigError(f"ISAC Scenario: source must be one of {', '.join(SOURCES)}, got {source!r}")
    return Scenario.default().with_overrides(dict(fields or {}))


def field_keys() -> dict[str, str]:
    """The block's parameter ids -> their configuration keys."""
    return {k.field_id: k.key for k in KEYS.values()}


def frame_geometry(scenario=None):
    """The frame geometry of a block's ``scenario`` parameter (a Scenario, a TOML path, or None):
    what the blocks' port sizes (``vlen``) are computed from."""
    from .model.geometry import FrameGeometry

    return FrameGeometry.of(Scenario.of(scenario))


def speed_points(scenario=None) -> int:
    """N_v, the speeds of the receiver's Doppler grid of a block's ``scenario`` (1 for frames of one
    OFDM symbol): the size of the range-velocity map of isac.angle_delay_map_stream (its second
    output, ``map_points[1] * speed_points``)."""
    return Scenario.of(scenario).doppler_points


__all__ = ["SOURCES", "field_keys", "frame_geometry", "scenario_of_fields", "speed_points"]
