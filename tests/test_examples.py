"""Every notebook in ``examples/`` runs top to bottom at a small size, and prints what it claims.

The notebooks read ``MEDRECON_EXAMPLE_SIZE`` to size their images; the kernel inherits it (and
``MPLBACKEND=Agg``) from this process's environment, which is set only while a kernel starts.
Notebooks run in the ``python3`` kernel that ipykernel installs into the environment
(``<prefix>/share/jupyter/kernels/python3``); jupyter_client starts it with this interpreter.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 120
KERNEL_ENV = {"MEDRECON_EXAMPLE_SIZE": "64", "MPLBACKEND": "Agg"}

# jupyter_client replaces these argv[0] values by the running interpreter (sys.executable)
_SAME_INTERPRETER = {
    "python",
    "python{}".format(*sys.version_info),
    "python{}.{}".format(*sys.version_info),
}


def _check_kernel() -> None:
    """Fail with a useful message unless ``python3`` starts this interpreter."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as exc:
        raise AssertionError(
            f"no {KERNEL_NAME!r} Jupyter kernel spec; `pip install -e .[test]` installs "
            f"ipykernel, which ships one in {sys.prefix}/share/jupyter/kernels"
        ) from exc
    exe = spec.argv[0]
    assert exe in _SAME_INTERPRETER or Path(exe).resolve() == Path(sys.executable).resolve(), (
        f"kernel {KERNEL_NAME!r} ({spec.resource_dir}) starts {exe!r}, not this interpreter "
        f"{sys.executable!r}; remove that kernel spec or reinstall ipykernel here"
    )


@functools.cache
def executed(name: str) -> nbformat.NotebookNode:
    """The notebook ``examples/<name>``, executed at the small size (run once per session)."""
    _check_kernel()
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in KERNEL_ENV.items():
            mp.setenv(key, value)
        client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    return nb


def stdout_of(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's code cells printed to stdout."""
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "stream" and out.get("name") == "stdout"
    )


def find_all(pattern: str, text: str) -> list[tuple[str, ...]]:
    """All matches of ``pattern`` (one per line); fail, showing the output, if there are none."""
    found = [m.groups() for m in re.finditer(pattern, text, flags=re.MULTILINE)]
    assert found, f"no line matches {pattern!r} in the notebook's output:\n{text}"
    return found


def test_examples_folder_has_notebooks() -> None:
    assert NOTEBOOKS, f"no notebook found in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_errors(path: Path) -> None:
    nb = executed(path.name)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code cell"
    for i, cell in enumerate(code_cells):
        assert cell.execution_count is not None, f"code cell {i} of {path.name} did not run"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, f"code cell {i} of {path.name} raised {errors[0].get('ename')}"


@pytest.mark.slow
def test_ct_basics_prints_its_checks() -> None:
    text = stdout_of(executed("01_ct_basics.ipynb"))

    (size,) = find_all(r"^SIZE = (\d+):", text)[0]
    assert size == KERNEL_ENV["MEDRECON_EXAMPLE_SIZE"]

    (dot_err,) = find_all(r"^dot test relative error: (\S+)$", text)[0]
    assert float(dot_err) < 1e-4

    # FBP noise in the uniform ROI: more noise at low dose, little bias at high dose
    (true_hu,) = find_all(r"^uniform ROI: \d+ pixels, true value (\S+) HU$", text)[0]
    noise = {
        (float(i0), filt): (float(mean), float(std))
        for i0, filt, mean, std in find_all(
            r"^FBP ROI noise I0=(\S+) filter=(\S+): mean (\S+) HU, std (\S+) HU$", text
        )
    }
    filters = {filt for _, filt in noise}
    assert len(filters) == 2 and set(noise) == {(i0, f) for i0 in (1e4, 1e6) for f in filters}
    for filt in filters:
        assert noise[1e4, filt][1] > 2 * noise[1e6, filt][1]
        assert abs(noise[1e6, filt][0] - float(true_hu)) < 10

    # TV beats every FBP at low dose
    psnr = {name: float(db) for name, db in find_all(r"^PSNR (.+?) I0=1e\+04: (\S+) dB", text)}
    tv = [name for name in psnr if name.startswith("TV")]
    fbps = [name for name in psnr if name.startswith("FBP")]
    assert len(tv) == 1 and len(fbps) == 2, psnr
    assert all(psnr[tv[0]] > psnr[name] for name in fbps), psnr

    (grad_err,) = find_all(r"^autograd gradient relative error: (\S+)$", text)[0]
    assert float(grad_err) < 1e-10


@pytest.mark.slow
def test_metal_artifacts_prints_its_checks() -> None:
    text = stdout_of(executed("02_metal_artifacts.ipynb"))

    (size,) = find_all(r"^SIZE = (\d+):", text)[0]
    assert size == KERNEL_ENV["MEDRECON_EXAMPLE_SIZE"]

    # physics: a hardened 120 kVp spectrum; metal attenuates far more than bone and water
    (mean_kev,) = find_all(r"^120 kVp spectrum: mean energy (\S+) keV$", text)[0]
    assert 50.0 < float(mean_kev) < 80.0
    mu = {
        name: (float(mu70), float(hu))
        for name, mu70, hu in find_all(r"^mu\(70 keV\) (\S+): (\S+) /mm = (\S+) HU;", text)
    }
    assert set(mu) == {"water", "cortical_bone", "titanium", "steel"}
    assert abs(mu["water"][1]) < 5
    assert mu["water"][0] < mu["cortical_bone"][0] < mu["titanium"][0] < mu["steel"][0]
    assert mu["titanium"][1] > 2500  # above the default metal threshold

    # beam hardening: the water precorrection removes (most of) the cupping
    cupping = {
        name: (float(centre), float(edge), float(cup))
        for name, centre, edge, cup in find_all(
            r"^water cylinder (\S+): centre (\S+) HU, edge (\S+) HU, cupping (\S+) HU$", text
        )
    }
    assert set(cupping) == {"uncorrected", "precorrected"}
    assert cupping["uncorrected"][2] > 10
    assert abs(cupping["precorrected"][2]) < 0.25 * cupping["uncorrected"][2]
    for centre, edge, cup in cupping.values():
        assert abs(edge - centre - cup) < 0.2  # cupping = edge - centre (printed to 0.1 HU)

    # hip prostheses: NMAR beats the uncorrected image; LI and NMAR cut the streaks
    table = {
        label: (float(p), float(s), float(streak))
        for label, p, s, streak in find_all(
            r"^(\S.*?)\s+PSNR\s+(\S+) dB\s+SSIM (\S+)\s+streak index\s+(\S+) HU$", text
        )
    }
    expected = {
        "uncorrected",
        "no implants",
        "LI-MAR",
        "NMAR",
        "NMAR + frequency split",
        "image-domain NMAR",
    }
    assert set(table) == expected, table
    unc, nmar = table["uncorrected"], table["NMAR"]
    assert nmar[0] > unc[0] + 2.0
    assert nmar[1] > unc[1]
    assert table["LI-MAR"][2] < 0.5 * unc[2] and nmar[2] < 0.5 * unc[2]
    assert table["no implants"][0] > unc[0] + 2.0  # the artifacts come from the metal

    # the image-domain path helps, but less than correcting the raw data
    image_domain = table["image-domain NMAR"]
    assert image_domain[0] > unc[0]
    assert nmar[0] > image_domain[0] and nmar[2] < image_domain[2]

    # 3D: NMAR on cone-beam data improves the central slice
    before, after = find_all(
        r"^cone beam central slice: PSNR uncorrected (\S+) dB -> NMAR (\S+) dB$", text
    )[0]
    assert float(after) > float(before) + 2.0


@pytest.mark.slow
def test_mr_recon_prints_its_checks() -> None:
    text = stdout_of(executed("03_mr_recon.ipynb"))

    (size,) = find_all(r"^SIZE = (\d+):", text)[0]
    assert size == KERNEL_ENV["MEDRECON_EXAMPLE_SIZE"]

    # the centred FFT is unitary: Parseval and the round trip hold to rounding (complex64)
    (parseval,) = find_all(r"^Parseval relative error: (\S+)$", text)[0]
    (round_trip,) = find_all(r"^round-trip relative error: (\S+)$", text)[0]
    assert float(parseval) < 1e-6 and float(round_trip) < 1e-6

    # 4x masks keep about a quarter of k-space (the fastMRI random mask only on average);
    # fastMRI's older equispaced rule keeps every 4th column plus the centre, a bit more
    fractions = {
        name: float(value) for name, value in find_all(r"^sampled fraction (.+?): (\S+)$", text)
    }
    quarter = {"random", "equispaced", "Poisson disc"}
    assert quarter < set(fractions), fractions
    for name in quarter:
        assert abs(fractions[name] - 0.25) < 0.03, fractions
    assert 0.25 < fractions["equispaced (every 4th + centre)"] < 0.4, fractions

    (espirit_err,) = find_all(r"^ESPIRiT maps reproduce the coil images: NRMSE (\S+)$", text)[0]
    assert float(espirit_err) < 0.1

    # NRMSE and SSIM of the magnitude images against the phantom
    table = {
        name: (float(err), float(sim))
        for name, err, sim in find_all(r"^NRMSE (.+?): (\S+), SSIM (\S+)$", text)
    }
    expected = {
        "zero-filled",
        "CG-SENSE",
        "CS l1-wavelet",
        "CS TV",
        "zero-filled (every 4th + centre)",
        "GRAPPA",
        "gridding",
        "CG-NUFFT-SENSE",
    }
    assert set(table) == expected, table
    nrmse = {name: err for name, (err, _) in table.items()}
    # at 64 px (8 ACS lines) the ordering holds with margins of about 25% and 2x; at 256 the
    # wavelet CS error is about a third of CG-SENSE's
    assert nrmse["CS l1-wavelet"] < nrmse["CG-SENSE"] < nrmse["zero-filled"], nrmse
    assert nrmse["CS TV"] < nrmse["zero-filled"], nrmse
    assert table["CS l1-wavelet"][1] > table["CG-SENSE"][1] > table["zero-filled"][1], table
    # GRAPPA is compared with the zero filling of its own (every 4th + centre) mask
    assert nrmse["GRAPPA"] < nrmse["zero-filled (every 4th + centre)"], nrmse
    assert nrmse["CG-NUFFT-SENSE"] < nrmse["gridding"], nrmse

    (dot_err,) = find_all(r"^NUFFT dot test relative error: (\S+)$", text)[0]
    assert float(dot_err) < 1e-4

    (same,) = find_all(r"^fastMRI round trip identical: (\S+)$", text)[0]
    assert same == "True"

    (grad_diff,) = find_all(r"^autograd gradient relative difference: (\S+)$", text)[0]
    assert float(grad_diff) < 1e-5
