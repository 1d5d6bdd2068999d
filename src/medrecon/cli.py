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
        Path,
        typer.Option(
            "--out",
            help="Folder for ct_panel.png, mar_panel.png, metrics.json and report.md (created).",
        ),
    ] = Path("out"),
    size: Annotated[
        int, typer.Option("--size", min=32, help="Image side in pixels (400 mm field of view).")
    ] = 256,
    views: Annotated[
        int, typer.Option("--views", min=16, help="Number of views over 360 degrees.")
    ] = 360,
    iters: Annotated[int, typer.Option("--iters", min=1, help="PDHG-TV iterations.")] = 80,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the Poisson noise.")] = 0,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = True,
) -> None:
    """Simulate chest CT at two doses (FBP, TV) and hip prostheses (LI, NMAR); write a report."""
    from medrecon.demo import run_demo

    summary = run_demo(out, size=size, n_views=views, n_iter=iters, progress=progress, seed=seed)
    files = summary["files"]
    typer.echo(f"figure:  {files['figure']}")
    typer.echo(f"metal:   {files['mar_figure']}")
    typer.echo(f"metrics: {files['metrics']}")
    typer.echo(f"report:  {files['report']}")
    for rec in summary["reconstructions"].values():
        typer.echo(
            f"  {rec['label']:<22} PSNR {rec['psnr_db']:6.2f} dB  SSIM {rec['ssim']:.4f}  "
            f"noise {rec['noise_std_hu']:6.1f} HU"
        )
    typer.echo(
        f"TV lambda {summary['tv']['lam']:.4g}, {summary['tv']['iterations_run']} iterations; "
        f"total {summary['total_time_s']:.1f} s; dot-test relative error "
        f"{summary['dot_test']['rel_error_float64']:.1e} (float64)"
    )
    typer.echo("hip prostheses (120 kVp, window [-175, 275] HU):")
    for rec in summary["mar"]["reconstructions"].values():
        typer.echo(
            f"  {rec['label']:<28} PSNR {rec['psnr_db']:6.2f} dB  SSIM {rec['ssim']:.4f}  "
            f"streak {rec['streak_index_hu']:6.1f} HU"
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
