"""The configuration schema (python/isac/config_schema.py) loaded from its file, for the
generators in tools/ (gen_config_doc.py, gen_grc_scenario.py): they run with any python3,
without the package installed. config_schema imports only the standard library."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_schema():
    spec = importlib.util.spec_from_file_location("isac_config_schema", REPO / "python" / "isac" / "config_schema.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    spec.loader.exec_module(module)
    return module
