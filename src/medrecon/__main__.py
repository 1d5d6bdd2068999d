"""``python -m medrecon``: the command-line interface of :mod:`medrecon.cli`."""

from medrecon.cli import app

app(prog_name="medrecon")
