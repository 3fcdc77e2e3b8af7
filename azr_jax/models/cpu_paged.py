"""The CPU paged-attention kernel (`cpu_kernels/paged_decode.cc`): built on first use with the
machine's C++ compiler against the pinned jaxlib's XLA FFI headers, loaded, and registered as
the custom call `azr_paged_decode`.

It reads each row's live pages in place, where the XLA gather path copies every page of the
table each step (see the source's header). The library is cached under
``$AZR_JAX_CACHE/kernels`` (default ``~/.cache/azr_jax/kernels``), named by a hash of the
source, the compile command, the jaxlib version and this CPU's feature flags (it is built
with ``-march=native``), so a changed source or another machine builds afresh. Without a
working compiler (``$CXX``, else ``c++``) the kernel is unavailable: `available()` says so
once, on stderr, and `paged_attention.resolve_paged_impl` keeps the XLA gather path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.userfiles import cache_root

TARGET = "azr_paged_decode"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_kernels",
                      "paged_decode.cc")
FLAGS = ("-O3", "-march=native", "-ffast-math", "-shared", "-fPIC", "-std=c++17", "-pthread",
         "-w")


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return os.uname().machine


def _library_path(compiler: str) -> str:
    with open(SOURCE, "rb") as f:
        key = hashlib.sha256(f.read())
    for part in (compiler, " ".join(FLAGS), jax.__version__, _cpu_flags()):
        key.update(part.encode())
    return os.path.join(cache_root(), "kernels", f"paged_decode-{key.hexdigest()[:16]}.so")


def _build(compiler: str, path: str) -> None:
    """Compile into a temporary file, then rename: processes building at once do not clash."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    try:
        cmd = [compiler, *FLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.cache
def available() -> bool:
    """Whether the kernel is built, loaded and registered in this process (built now if
    needed). A failure is reported once on stderr and the answer is False."""
    compiler = os.environ.get("CXX") or "c++"
    try:
        if shutil.which(compiler) is None:
            raise RuntimeError(f"no C++ compiler ({compiler!r}; set $CXX)")
        path = _library_path(compiler)
        if not os.path.exists(path):
            _build(compiler, path)
        lib = ctypes.cdll.LoadLibrary(path)
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.AzrPagedDecode),
                                    platform="cpu")
        return True
    except Exception as e:  # noqa: BLE001 -- any failure means: use the XLA path
        print(f"azr_jax: the CPU paged-attention kernel is unavailable ({e}); paged decode "
              f"uses the XLA gather path", file=sys.stderr)
        return False


def kernel_attention(q_bnh, k_kpsh, v_kpsh, table_bp, lengths_b, *, scale: float,
                     softcap: float = 0.0, window=None, interpret: bool = False):
    """`paged_attention.PAGED_IMPLS` signature: [b, n, h] f32 queries over each row's first
    lengths_b positions of its pages (no sliding window; f32 pools)."""
    del interpret
    assert window is None, "resolve_paged_impl keeps sliding windows off the kernels"
    call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct(q_bnh.shape, jnp.float32),
                            vmap_method="sequential")
    out = call(q_bnh.astype(jnp.float32), k_kpsh.astype(jnp.float32),
               v_kpsh.astype(jnp.float32), table_bp.astype(jnp.int32),
               lengths_b.astype(jnp.int32), scale=np.float32(scale),
               softcap=np.float32(softcap))
    return out.astype(q_bnh.dtype)
