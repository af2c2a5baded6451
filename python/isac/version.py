#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""The version of gr-isac: the CMake project version (CMakeLists.txt ``project(gr-isac VERSION ...)``),
kept equal by tests/test_sigmf.py. Written into the metadata of SigMF recordings (recording.py)."""

__version__ = "1.0.0"
