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
    """Simulate chest CT at two doses (FBP, TV), hip prostheses (LI, NMAR) and 4x multi-coil MR
    (zero-filled, SENSE, CS); write figures, metrics, a report and DICOM."""
    from medrecon.demo import run_demo

    summary = run_demo(out, size=size, n_views=views, n_iter=iters, progress=progress, seed=seed)
    files = summary["files"]
    typer.echo(f"figure:  {files['figure']}")
    typer.echo(f"metal:   {files['mar_figure']}")
    typer.echo(f"mr:      {files['mr_figure']}")
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
    typer.echo("multi-coil MR, 4x undersampled (magnitude, inside the head):")
    for rec in summary["mr"]["reconstructions"].values():
        typer.echo(
            f"  {rec['label']:<28} NRMSE {rec['nrmse']:.4f}  PSNR {rec['psnr_db']:6.2f} dB  "
            f"SSIM {rec['ssim']:.4f}"
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


dicom_app = typer.Typer(
    help="DICOM: list series, export a derived series with lineage, send to a PACS.",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="The append-only audit log of DICOM writes.", no_args_is_help=True)
app.add_typer(dicom_app, name="dicom")
app.add_typer(audit_app, name="audit")


@dicom_app.command("info")
def dicom_info(
    source: Annotated[
        Path, typer.Argument(help="A DICOM file or a folder (searched recursively).")
    ],
) -> None:
    """List the image series found: modality, size, spacing, description and UIDs."""
    from medrecon.dicom import read_all_series

    found = read_all_series(source, skip_invalid=True)
    if not found:
        typer.echo(f"no DICOM image series in {source}", err=True)
        raise typer.Exit(1)
    for uid, s in found.items():
        k, i, j = s.shape
        dz, dy, dx = s.spacing
        typer.echo(
            f"{s.modality} {k}x{i}x{j} spacing {dz:.4g}/{dy:.4g}/{dx:.4g} mm "
            f"{s.units}{' lossy' if s.lossy else ''} {s.series_description!r}\n"
            f"  series {uid}\n  study  {s.study_instance_uid}"
        )


@dicom_app.command("export")
def dicom_export(
    source: Annotated[Path, typer.Argument(help="The source series (file or folder).")],
    volume: Annotated[
        Path, typer.Argument(help="The result as a .npy array (slices, rows, cols).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the derived series (created).")],
    algorithm: Annotated[str, typer.Option(help="Algorithm name.")],
    version: Annotated[str, typer.Option(help="Algorithm version.")],
    kind: Annotated[
        str,
        typer.Option(
            help="denoising | super_resolution | metal_artifact_reduction | reconstruction"
        ),
    ] = "denoising",
    model_name: Annotated[str | None, typer.Option(help="Model name.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Model version.")] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Weights file (its SHA-256 is recorded).")
    ] = None,
    series_uid: Annotated[str | None, typer.Option(help="Source series UID if several.")] = None,
    audit: Annotated[Path | None, typer.Option(help="Audit log to append to.")] = None,
    enhanced: Annotated[
        bool,
        typer.Option(
            "--enhanced/--classic",
            help="One Enhanced CT/MR multi-frame object, or classic single-frame objects.",
        ),
    ] = False,
) -> None:
    """Write VOLUME as a derived series of SOURCE, with full lineage."""
    import hashlib

    import numpy as np

    from medrecon.dicom import AlgorithmInfo, AuditLog, read_series, write_derived_series

    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights is not None else None
    info = AlgorithmInfo(
        name=algorithm,
        version=version,
        kind=kind,
        model_name=model_name,
        model_version=model_version,
        weights_sha256=digest,
    )
    src = read_series(source, series_uid=series_uid)
    data = np.load(volume, allow_pickle=False)
    log = AuditLog(audit) if audit is not None else None
    datasets = write_derived_series(data, src, info, out, enhanced=enhanced, audit=log)
    typer.echo(
        f"wrote {len(datasets)} instances of series {datasets[0].SeriesInstanceUID} "
        f"({datasets[0].SeriesDescription!r}) to {out}"
    )


@dicom_app.command("send")
def dicom_send(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders to send.")],
    host: Annotated[str | None, typer.Option(help="C-STORE peer host.")] = None,
    port: Annotated[int, typer.Option(help="C-STORE peer port.")] = 104,
    aet: Annotated[str, typer.Option(help="Called AE title (C-STORE).")] = "ANY-SCP",
    calling_aet: Annotated[str, typer.Option(help="Our AE title.")] = "MEDRECON",
    stow: Annotated[str | None, typer.Option(help="DICOMweb STOW-RS base URL instead.")] = None,
    user: Annotated[str | None, typer.Option(help="HTTP basic-auth user (STOW).")] = None,
    password_env: Annotated[
        str, typer.Option(help="Environment variable holding the password (STOW).")
    ] = "MEDRECON_STOW_PASSWORD",
    audit: Annotated[Path | None, typer.Option(help="Audit log to append to.")] = None,
) -> None:
    """Send files by C-STORE (--host) or STOW-RS (--stow); fails listing what was not stored."""
    import hashlib
    import os

    from medrecon.dicom import AuditLog, send_cstore, send_stow
    from medrecon.errors import SendError

    files = [
        f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.dcm"))) if f.is_file()
    ]
    if (host is None) == (stow is None):
        typer.echo("give exactly one of --host (C-STORE) or --stow (STOW-RS)", err=True)
        raise typer.Exit(2)
    log = AuditLog(audit) if audit is not None else None
    inputs = [{"path": str(f), "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in files]
    try:
        if host is not None:
            report = send_cstore(files, host, port, aet, calling_aet=calling_aet)
        else:
            assert stow is not None
            auth = (user, os.environ.get(password_env, "")) if user else None
            report = send_stow(files, stow, auth=auth)
    except SendError as exc:
        if log is not None:
            log.append("send", inputs=inputs, outputs=exc.stored, status="failed", error=str(exc))
        typer.echo(str(exc), err=True)
        for uid, reason in exc.failed.items():
            typer.echo(f"  not stored: {uid}: {reason}", err=True)
        raise typer.Exit(1) from exc
    if log is not None:
        log.append(
            "send",
            inputs=inputs,
            outputs=list(report.stored),
            parameters={"destination": report.destination},
        )
    typer.echo(f"stored {len(report.stored)} of {len(files)} instances at {report.destination}")


@audit_app.command("verify")
def audit_verify(
    log: Annotated[Path, typer.Argument(help="The audit log (JSON lines).")],
) -> None:
    """Check the hash chain of an audit log; exit 1 naming the first bad line."""
    from medrecon.dicom import AuditLog
    from medrecon.errors import AuditError

    try:
        n = AuditLog(log).verify()
    except AuditError as exc:
        typer.echo(f"audit log NOT valid: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{log}: {n} entries, hash chain intact")
