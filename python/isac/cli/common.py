"""Options shared by every app: --config FILE and repeated --set key=value."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, Scenario
from ..resources import check_memory


def add_scenario_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="scenario TOML file (default: built-in Sec. V-A scenario)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key, e.g. --set scene.snr_sensing_db=20 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show progress bars")


def load_scenario(args: argparse.Namespace) -> Scenario:
    """Scenario from --config and --set, refused up front when its estimated peak memory
    exceeds the memory available (resources.check_memory, for the --receiver when the app
    has one); exits with status 2 and a one-line message on bad input."""
    receiver = getattr(args, "receiver", None)
    try:
        scenario = Scenario.load(args.config, args.overrides)
        check_memory(scenario, receiver if receiver in ("omp", "domp") else None)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return scenario


def progress_flag(args: argparse.Namespace):
    """False when --no-progress, else None (tqdm decides: on for terminals)."""
    return False if args.no_progress else None
