"""isac-companion and isac-grcc: GNU Radio Companion and its compiler grcc, run with the Python
gr-isac is installed for and with gr-isac's block files on GRC_BLOCKS_PATH.

GRC evaluates the ISAC blocks' expressions (the port sizes ``isac.frame_geometry(scenario)``, the
ISAC Scenario block's value) with ``gnuradio.isac``; Debian's ``gnuradio-companion`` and ``grcc``
run ``/usr/bin/python3``, which does not see a module installed into a virtual environment. These
launchers start GNU Radio's own scripts with this interpreter instead (the environment is made
with --system-site-packages, so GNU Radio and its GTK stack are the system's).
"""

from __future__ import annotations

import os
import shutil
import sys

BLOCKS_DIR = os.path.join(sys.prefix, "share", "gnuradio", "grc", "blocks")


def _run(tool: str, argv: list[str]) -> int:
    script = shutil.which(tool) or os.path.join("/usr/bin", tool)
    if not os.path.isfile(script):
        print(f"error: GNU Radio's {tool} is not installed (Debian: apt install gnuradio)", file=sys.stderr)
        return 2
    paths = [p for p in os.environ.get("GRC_BLOCKS_PATH", "").split(os.pathsep) if p]
    if os.path.isdir(BLOCKS_DIR) and BLOCKS_DIR not in paths:
        paths.append(BLOCKS_DIR)
    env = dict(os.environ, GRC_BLOCKS_PATH=os.pathsep.join(paths))
    os.execve(sys.executable, [sys.executable, script, *argv], env)
    return 0  # pragma: no cover - execve does not return


def companion_main(argv=None) -> int:
    """isac-companion [gnuradio-companion options and .grc files]"""
    return _run("gnuradio-companion", sys.argv[1:] if argv is None else list(argv))


def grcc_main(argv=None) -> int:
    """isac-grcc [grcc options] FILE.grc"""
    return _run("grcc", sys.argv[1:] if argv is None else list(argv))
