"""MR reconstruction: centred FFTs, Cartesian sampling masks and SENSE.

* :mod:`medrecon.mr.fft`: :func:`fft2c`, :func:`ifft2c`, :func:`fftnc`,
  :func:`ifftnc`, :func:`rss` (numpy and torch);
* :mod:`medrecon.mr.masks`: fastMRI-compatible :func:`random_mask` and
  :func:`equispaced_mask`;
* :mod:`medrecon.mr.sense`: the encoding operator :class:`SenseOperator` and
  :func:`sense_recon` (CG-SENSE);
* :mod:`medrecon.mr.cs`: compressed sensing, :func:`cs_wavelet` (l1-wavelet, FISTA/ADMM) and
  :func:`cs_tv` (isotropic TV, PDHG) on SENSE or any complex operator;
* :mod:`medrecon.mr.io`: fastMRI HDF5 (read/write), ISMRMRD (read), BART ``.cfl/.hdr``;
* :mod:`medrecon.mr.espirit`: :func:`espirit` coil maps (ESPIRiT), :func:`calibration_region`,
  :func:`auto_calib_size`;
* :mod:`medrecon.mr.grappa`: :func:`grappa` for 1D Cartesian undersampling along the last
  axis, :func:`acs_from_mask`;
* :mod:`medrecon.mr.nufft` / :mod:`medrecon.mr.trajectories`: non-Cartesian NUFFT
  (FINUFFT on the CPU, cuFINUFFT on CUDA tensors), the Toeplitz normal operator, CG-NUFFT-SENSE,
  radial, spiral and Poisson-disc sampling, Pipe and ramp density compensation (the
  differentiable functions ``nufft``/``nufft_adjoint`` are not re-exported here: a function
  named like its module would shadow the module);
* :mod:`medrecon.mr.simulate`: a tissue-labelled head phantom, birdcage coil maps and noisy
  multi-coil k-space.

k-space layout: ``(coils, ky, kx)`` or ``(slices, coils, ky, kx)``, DC at the
centre of the grid.
"""

from __future__ import annotations

from medrecon.mr.cs import CSInfo, GradientOperator, WaveletOperator, cs_tv, cs_wavelet
from medrecon.mr.espirit import PhaseReference, auto_calib_size, calibration_region, espirit
from medrecon.mr.fft import fft2c, fftnc, ifft2c, ifftnc, rss
from medrecon.mr.grappa import acs_from_mask, grappa
from medrecon.mr.io import (
    FastMRIData,
    IsmrmrdData,
    bart_to_kspace,
    kspace_to_bart,
    make_ismrmrd_header,
    read_cfl,
    read_fastmri,
    read_ismrmrd,
    write_cfl,
    write_fastmri,
)
from medrecon.mr.masks import center_lines, equispaced_mask, random_mask
from medrecon.mr.nufft import NufftOperator, ToeplitzNormal, nufft_sense_recon
from medrecon.mr.sense import SenseOperator, sense_recon
from medrecon.mr.simulate import birdcage_maps, brain_phantom, simulate_kspace
from medrecon.mr.trajectories import (
    GOLDEN_ANGLE,
    pipe_dcf,
    poisson_disc_mask,
    radial,
    ramp_dcf,
    spiral,
)

__all__ = [
    "GOLDEN_ANGLE",
    "CSInfo",
    "FastMRIData",
    "GradientOperator",
    "IsmrmrdData",
    "NufftOperator",
    "PhaseReference",
    "SenseOperator",
    "ToeplitzNormal",
    "WaveletOperator",
    "acs_from_mask",
    "auto_calib_size",
    "bart_to_kspace",
    "birdcage_maps",
    "brain_phantom",
    "calibration_region",
    "center_lines",
    "cs_tv",
    "cs_wavelet",
    "equispaced_mask",
    "espirit",
    "fft2c",
    "fftnc",
    "grappa",
    "ifft2c",
    "ifftnc",
    "kspace_to_bart",
    "make_ismrmrd_header",
    "nufft_sense_recon",
    "pipe_dcf",
    "poisson_disc_mask",
    "radial",
    "ramp_dcf",
    "random_mask",
    "read_cfl",
    "read_fastmri",
    "read_ismrmrd",
    "rss",
    "sense_recon",
    "simulate_kspace",
    "spiral",
    "write_cfl",
    "write_fastmri",
]
