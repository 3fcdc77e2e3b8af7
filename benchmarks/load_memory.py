"""Peak host memory of `load_model` (default: the bundled SmolLM2-135M), in a fresh subprocess.

Prints the peak RSS growth caused by loading (peak RSS minus RSS after imports) and its ratio
to the size of the loaded parameters, for a cold load (GGUF -> f32 cache conversion) and a
warm load (from the cache).  Usage: python benchmarks/load_memory.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, resource, sys, time
import jax, numpy as np
import azr_jax.checkpoints as ck
import psutil
base = psutil.Process().memory_info().rss
t = time.time()
m = ck.load_model(sys.argv[1], progress=False)
jax.block_until_ready(m.params)
seconds = time.time() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
params = sum(x.nbytes for x in jax.tree_util.tree_leaves(m.params))
print(json.dumps({"base": base, "peak": peak, "params": params, "seconds": seconds}))
"""


def measure(model: str, cache: str) -> dict:
    env = {**os.environ, "AZR_JAX_CACHE": cache, "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _CHILD, model], env=env, cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    mib = 1 / 2 ** 20
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold (convert + cache)", "warm (from cache)"):
            r = measure(args.model, cache)
            growth = r["peak"] - r["base"]
            print(f"{label:24s} params {r['params'] * mib:7.1f} MiB  peak RSS {r['peak'] * mib:7.1f} MiB  "
                  f"(+{growth * mib:.1f} MiB over imports, {growth / r['params']:.2f}x params)  "
                  f"{r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
