"""CUDA backend: the kernels of ``kernels/`` (repository root) behind thin wrappers.

* :mod:`._sources` finds and reads the kernel sources (``kernels/`` of a checkout, or
  ``<sys.prefix>/share/medrecon/kernels`` of an installed wheel) and hashes them for caching;
* :mod:`._host` builds the same sources with the machine's C++ compiler into a small shared
  library (``-DMEDRECON_HOST_BUILD``) and runs it through ctypes: the per-thread bodies of the
  GPU kernels, on the CPU, tested against the numba backend without a GPU.

Nothing here imports CuPy, so importing this package never needs a GPU. The kernels' ABI and
projector model are documented in ``kernels/README.md``.
"""
