"""MR raw-data files (medrecon.mr.io): fastMRI HDF5, ISMRMRD, BART cfl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import ismrmrd.xsd
import numpy as np
import pytest
import torch

from medrecon.errors import DtypeError, MRFileError, ShapeError
from medrecon.mr.fft import ifft2c, rss
from medrecon.mr.io import (
    bart_to_kspace,
    kspace_to_bart,
    make_ismrmrd_header,
    read_cfl,
    read_fastmri,
    read_ismrmrd,
    write_cfl,
    write_fastmri,
)

SHEPP_TOOL = "ismrmrd_generate_cartesian_shepp_logan"


def rand_complex(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


# -------------------------------------------------------------------------------- fastMRI
def test_fastmri_round_trip_bit_exact(tmp_path: Path) -> None:
    k = rand_complex((3, 4, 40, 24))
    recon = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    attrs = {"acquisition": "CORPD_FBK", "patient_id": "abc123", "max": 2.5, "norm": 7.25}
    header = make_ismrmrd_header((40, 24, 1), recon_matrix=(16, 16, 1), fov_mm=(160, 96, 3))
    path = tmp_path / "file1000000.h5"
    write_fastmri(path, k, reconstruction_rss=recon, ismrmrd_header=header, attrs=attrs)
    d = read_fastmri(path)
    assert d.kspace.dtype == np.complex64 and d.kspace.tobytes() == k.tobytes()
    assert d.reconstruction_rss is not None
    assert d.reconstruction_rss.dtype == np.float32
    assert d.reconstruction_rss.tobytes() == recon.tobytes()
    assert d.reconstruction_esc is None and d.mask is None and d.multicoil
    assert d.ismrmrd_header == header and d.attrs == attrs
    # exact dataset names and dtypes as the fastMRI files
    with h5py.File(path, "r") as fh:
        assert set(fh.keys()) == {"kspace", "reconstruction_rss", "ismrmrd_header"}
        assert fh["kspace"].dtype == np.complex64
        assert fh["reconstruction_rss"].dtype == np.float32
        assert isinstance(fh["ismrmrd_header"][()], bytes)
        assert fh.attrs["acquisition"] == "CORPD_FBK"
    # no temporary files left next to it
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_fastmri_single_coil_defaults_mask_and_torch(tmp_path: Path) -> None:
    k = rand_complex((2, 32, 20))
    esc = np.ones((2, 8, 8), np.float32) * 3
    mask = np.zeros(20, np.float32)
    mask[8:12] = 1
    path = tmp_path / "single.h5"
    write_fastmri(path, torch.from_numpy(k), reconstruction_esc=esc, mask=mask)
    d = read_fastmri(path)
    assert not d.multicoil and d.kspace.tobytes() == k.tobytes()
    assert d.reconstruction_esc is not None and np.array_equal(d.reconstruction_esc, esc)
    assert d.mask is not None and np.array_equal(d.mask, mask)
    assert d.attrs == {"max": 3.0, "norm": float(np.linalg.norm(esc))}
    # the default header is valid ISMRMRD with the k-space's matrix
    assert d.ismrmrd_header is not None
    hdr = ismrmrd.xsd.CreateFromDocument(d.ismrmrd_header)
    m = hdr.encoding[0].encodedSpace.matrixSize
    assert (m.x, m.y, m.z) == (32, 20, 1)
    assert hdr.encoding[0].reconSpace.fieldOfView_mm.x == 32.0


def test_fastmri_overwrite_is_atomic_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    write_fastmri(path, np.ones((1, 4, 4), np.complex64))
    write_fastmri(path, np.zeros((1, 2, 4, 4), np.complex64))
    assert read_fastmri(path).kspace.shape == (1, 2, 4, 4)
    with pytest.raises(FileNotFoundError):
        read_fastmri(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(MRFileError, match="HDF5"):
        read_fastmri(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "nok.h5", "w") as fh:
        fh["other"] = np.zeros(3)
    with pytest.raises(ValueError, match="kspace"):
        read_fastmri(tmp_path / "nok.h5")
    with h5py.File(tmp_path / "real.h5", "w") as fh:
        fh["kspace"] = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(DtypeError):
        read_fastmri(tmp_path / "real.h5")
    with pytest.raises(ShapeError):
        write_fastmri(tmp_path / "x.h5", np.zeros((4, 4), np.complex64))
    with pytest.raises(ShapeError):
        write_fastmri(
            tmp_path / "x.h5",
            np.zeros((2, 4, 4), np.complex64),
            reconstruction_rss=np.ones((3, 4, 4)),
        )
    with pytest.raises(MRFileError, match="XML"):
        write_fastmri(tmp_path / "x.h5", np.zeros((1, 4, 4), np.complex64), ismrmrd_header="<a/>")
    assert not (tmp_path / "x.h5").exists()


# -------------------------------------------------------------------------------- ISMRMRD
@pytest.fixture(scope="module")
def shepp_logan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool = shutil.which(SHEPP_TOOL)
    if tool is None:
        pytest.skip(f"{SHEPP_TOOL} (ismrmrd-tools) is not installed")
    path = tmp_path_factory.mktemp("ismrmrd") / "testdata.h5"
    # 64 x 64 recon matrix, 4 coils, readout oversampling 2, fully sampled, noise scan added
    subprocess.run(
        [tool, "-m", "64", "-c", "4", "-n", "0.001", "-C", "-o", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _tool_images(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as fh:
        raw = fh["dataset"][name][()]
    return raw["real"] + 1j * raw["imag"]


def test_read_ismrmrd_shepp_logan(shepp_logan_file: Path) -> None:
    d = read_ismrmrd(shepp_logan_file)
    assert d.encoded_matrix == (128, 64, 1) and d.recon_matrix == (64, 64, 1)
    assert d.kspace.shape == (1, 4, 128, 64) and d.kspace.dtype == np.complex64
    assert d.mask.shape == (1, 64) and d.mask.all()
    assert d.noise is not None and d.noise.shape[0] == 4
    assert ismrmrd.xsd.CreateFromDocument(d.header).encoding[0].trajectory.value == "cartesian"
    # coil images: (readout, phase) -> the tool's (y, x) layout; crop the oversampled readout
    coil = ifft2c(d.kspace[0])[:, 32:96, :]
    tool_coils = _tool_images(shepp_logan_file, "coil_images")[0]  # (coils, y=64, x=128)
    tool_crop = np.transpose(tool_coils[:, :, 32:96], (0, 2, 1))
    ours = rss(coil)
    theirs = rss(tool_crop)
    scale = np.vdot(ours, theirs).real / np.vdot(ours, ours).real
    assert np.linalg.norm(scale * ours - theirs) / np.linalg.norm(theirs) < 0.02
    # and the object is the tool's phantom (noise and coil shading aside)
    phantom = np.abs(_tool_images(shepp_logan_file, "phantom")[0]).T
    corr = np.corrcoef(ours.ravel(), phantom.ravel())[0, 1]
    assert corr > 0.9, corr


def test_read_ismrmrd_accelerated_and_repetitions(tmp_path: Path) -> None:
    tool = shutil.which(SHEPP_TOOL)
    if tool is None:
        pytest.skip(f"{SHEPP_TOOL} (ismrmrd-tools) is not installed")
    path = tmp_path / "acc.h5"
    subprocess.run(
        [tool, "-m", "32", "-c", "2", "-a", "2", "-r", "2", "-o", str(path)],
        check=True,
        capture_output=True,
    )
    one = read_ismrmrd(path, repetition=0)
    both = read_ismrmrd(path)
    assert 0 < one.mask.sum() < 32
    assert both.mask.sum() >= one.mask.sum()
    assert np.all(one.kspace[..., ~one.mask[0]] == 0)
    with pytest.raises(ValueError, match="dataset"):
        read_ismrmrd(path, dataset="nope")
    with pytest.raises(FileNotFoundError):
        read_ismrmrd(tmp_path / "missing.h5")


# ----------------------------------------------------------------------------------- BART
def test_cfl_round_trip_and_layout(tmp_path: Path) -> None:
    a = rand_complex((6, 5, 1, 3))
    write_cfl(tmp_path / "a", a)
    hdr = (tmp_path / "a.hdr").read_text().splitlines()
    assert hdr[0] == "# Dimensions" and hdr[1].split() == ["6", "5", "1", "3"] + ["1"] * 12
    assert (tmp_path / "a.cfl").stat().st_size == a.size * 8
    b = read_cfl(tmp_path / "a.cfl")
    assert b.shape == (6, 5, 1, 3) and b.tobytes() == a.tobytes()
    # column-major on disk: x varies fastest
    raw = np.fromfile(tmp_path / "a.cfl", np.complex64)
    assert raw[1] == a[1, 0, 0, 0] and raw[6] == a[0, 1, 0, 0]
    k = bart_to_kspace(b)
    assert k.shape == (3, 6, 5) and k[2, 4, 1] == a[4, 1, 0, 2]
    np.testing.assert_array_equal(kspace_to_bart(k), a)
    assert bart_to_kspace(np.zeros((6, 5, 2, 3))).shape == (2, 3, 6, 5)
    with pytest.raises(ShapeError):
        bart_to_kspace(np.zeros((6, 5, 1, 3, 2)))
    with pytest.raises(ShapeError):
        kspace_to_bart(np.zeros((6, 5)))
    with pytest.raises(FileNotFoundError):
        read_cfl(tmp_path / "missing")
    (tmp_path / "bad.hdr").write_text("# Dimensions\n4 x\n")
    (tmp_path / "bad.cfl").write_bytes(b"")
    with pytest.raises(ValueError, match="Dimensions"):
        read_cfl(tmp_path / "bad")
    (tmp_path / "short.hdr").write_text("# Dimensions\n4 4\n")
    (tmp_path / "short.cfl").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="bytes"):
        read_cfl(tmp_path / "short")


def test_read_bart_phantom(tmp_path: Path) -> None:
    if shutil.which("bart") is None:
        pytest.skip("bart is not installed")
    subprocess.run(
        ["bart", "phantom", "-k", "-s", "4", "-x", "64", "k"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["bart", "fft", "-i", "-u", "3", "k", "img"], cwd=tmp_path, check=True, capture_output=True
    )
    k = read_cfl(tmp_path / "k")
    assert k.shape == (64, 64, 1, 4) and k.dtype == np.complex64
    kspace = bart_to_kspace(k)
    assert kspace.shape == (4, 64, 64)
    # DC at the centre and our centred unitary inverse FFT equals BART's "fft -i -u"
    assert np.unravel_index(np.argmax(np.abs(kspace[0])), (64, 64)) == (32, 32)
    img = bart_to_kspace(read_cfl(tmp_path / "img"))
    np.testing.assert_allclose(ifft2c(kspace), img, atol=1e-4 * np.abs(img).max())
    # and our writer produces files BART reads
    write_cfl(tmp_path / "back", kspace_to_bart(kspace))
    out = subprocess.run(
        ["bart", "show", "-m", "back"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    assert "64\t64\t1\t4" in out
