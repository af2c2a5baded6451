"""Options shared by the apps: --config FILE, repeated --set key=value and --plugin MODULE (every
app); the transceiver options --receiver, --temperature, --kernel, --weights-other-array (isac-sim,
isac-eval)."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, Scenario
from ..resources import check_memory


def load_plugins(argv) -> None:
    """Import the plug-ins named by --plugin in ``argv`` (sys.argv when None) before an app builds
    its parser: their methods, receivers and array models then are valid choices. Exits with
    status 2 and a one-line message when one cannot be imported."""
    from .. import plugins

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    for name in known.plugin:
        try:
            plugins.load(name)
        except plugins.PluginError as exc:
            print(f"error: --plugin: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


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
    parser.add_argument(
        "--plugin",
        metavar="MODULE",
        action="append",
        default=[],
        help="import a Python module or .py file that registers a method, a sensing receiver or an array "
        "model (repeatable; docs/architecture.md)",
    )


def add_transceiver_options(parser: argparse.ArgumentParser) -> None:
    """--receiver, --temperature, --kernel and --weights-other-array, the same in every app that
    builds a transceiver (the words of docs/architecture.md)."""
    from ..model.domp import DEFAULT_TEMPERATURE
    from ..transceiver import KERNELS, receivers

    parser.add_argument(
        "--receiver",
        choices=receivers(),
        default="omp",
        help="sensing estimator: omp (Algorithm 1), domp (differentiable-OMP inference, Sec. IV-B) or a "
        "registered receiver (--plugin)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"dOMP softmax temperature (default {DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--kernel",
        choices=KERNELS,
        default=None,
        help="implementation: cpp (the C++ kernels; the default when they are built) or numpy (the reference "
        "model, same results)",
    )
    parser.add_argument(
        "--weights-other-array",
        action="store_true",
        help="deploy --weights on an array other than the one they were learned on (the scenario "
        "hash is not compared; K, S, f_c, subcarrier spacing and impairment model still are)",
    )


def load_scenario(args: argparse.Namespace, streaming: bool = False) -> Scenario:
    """Scenario from --config and --set, refused up front when its estimated peak memory
    exceeds the memory available (resources.check_memory, for the --receiver when the app
    has one; ``streaming``: with the flowgraph's stream buffers, isac-sim); exits with status
    2 and a one-line message on bad input."""
    receiver = getattr(args, "receiver", None)
    try:
        scenario = Scenario.load(args.config, args.overrides)
        check_memory(scenario, receiver if receiver in ("omp", "domp") else None, streaming=streaming)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return scenario


def progress_flag(args: argparse.Namespace):
    """False when --no-progress, else None (tqdm decides: on for terminals)."""
    return False if args.no_progress else None
