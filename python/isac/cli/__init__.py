"""Command-line applications (installed as isac-sim, isac-eval)."""
