"""Root pytest configuration: what the doctest collection of src/ must skip."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("astra") is None:
    # the optional ASTRA adapter imports astra at module level
    collect_ignore.append("src/medrecon/projectors/astra_backend.py")
