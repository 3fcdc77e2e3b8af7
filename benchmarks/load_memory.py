"""Peak host memory (RSS) while loading the bundled SmolLM2 and sharding it onto a mesh,
against the size of one f32 copy of its weights.

    .venv/bin/python benchmarks/load_memory.py [--devices 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PeakRSS:
    """Samples this process's RSS every few ms in a thread."""

    def __init__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=8, help="fake CPU devices for the mesh")
    args = p.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")
    import jax
    import numpy as np

    from azr_jax.checkpoints import load_model
    from azr_jax.models import abstract_params
    from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh

    jax.devices()
    mesh = make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1))
    import psutil

    base = psutil.Process().memory_info().rss
    with PeakRSS() as mon:
        t0 = time.perf_counter()
        from azr_jax.models import get_preset

        shardings = logical_shardings(abstract_params(get_preset("smollm2-135m")), mesh)
        model = load_model("smollm2-135m", shardings=shardings, progress=False)
        jax.block_until_ready(model.params)
        seconds = time.perf_counter() - t0
    cfg = model.config
    weights = sum(np.dtype(x.dtype).itemsize * x.size for x in jax.tree.leaves(model.params))
    after = psutil.Process().memory_info().rss
    print(f"SmolLM2-135M ({cfg.num_params() / 1e6:.1f}M params) loaded + sharded over "
          f"{len(mesh.devices.flat)} CPU devices {dict(mesh.shape)} in {seconds:.1f} s")
    print(f"one copy of the weights ({model.params['embedding'].dtype}): {weights / 2**20:.0f} MiB")
    print(f"RSS before {base / 2**20:.0f} MiB, peak {mon.peak / 2**20:.0f} MiB, after {after / 2**20:.0f} MiB")
    print(f"peak increase {(mon.peak - base) / 2**20:.0f} MiB = {(mon.peak - base) / weights:.2f}x one copy "
          f"(the sharded params themselves live in host memory on CPU devices: 1.00x is the floor)")


if __name__ == "__main__":
    main()
