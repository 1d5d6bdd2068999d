"""Command-line interface: ``medrecon demo`` and ``medrecon info``.

Also reachable as ``python -m medrecon``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="medrecon",
    help="medrecon: CT reconstruction with exactly matched adjoints.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for overview.png and summary.json.")
    ] = Path("out"),
    size: Annotated[int, typer.Option("--size", min=16, help="Image side in pixels.")] = 256,
    views: Annotated[
        int, typer.Option("--views", min=2, help="Number of views over 360 degrees.")
    ] = 360,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
) -> None:
    """Project a head phantom with a fan beam, backproject it, and write a figure and a summary."""
    from medrecon.demo import run_demo

    summary = run_demo(out, size=size, n_views=views, progress=progress)
    files = summary["files"]
    typer.echo(f"overview figure: {files['overview']}")
    typer.echo(f"summary:         {files['summary']}")
    sino = summary["sinogram"]
    typer.echo(
        f"sinogram {tuple(sino['shape'])}, line integrals {sino['min']:.3g} to {sino['max']:.3g}; "
        f"dot-test relative error {summary['dot_test']['rel_error_float64']:.1e} (float64)"
    )


@app.command()
def info() -> None:
    """Print the version, the projector backends and numba's thread count."""
    import numba

    from medrecon import __version__
    from medrecon.projectors import available_backends, registered_backends

    typer.echo(f"medrecon {__version__}")
    available = set(available_backends())
    typer.echo("projector backends:")
    for name, description in registered_backends().items():
        state = "available" if name in available else "not available"
        typer.echo(f"  {name:<8} {state:<14} {description}")
    typer.echo(f"numba {numba.__version__}: {numba.get_num_threads()} threads")
