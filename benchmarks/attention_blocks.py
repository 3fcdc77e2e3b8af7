"""Blocked vs whole attention alone: value+grad time of `gqa_attention` with and without
query blocks (Qwen2.5-0.5B head shapes, 2 x 8192 causal tokens, bf16), and the busiest ops
of one traced call of each (traces under $OUT, default /tmp).

    python3 benchmarks/attention_blocks.py       # meant for a GPU/TPU; slow on CPU
"""
import functools, os, sys, time, glob, gzip, json, collections
sys.path.insert(0, os.getcwd())
import jax, jax.numpy as jnp
from azr_jax.models.attention import gqa_attention
b, t, n, k, h = 2, 8192, 14, 2, 64
ks = jax.random.split(jax.random.PRNGKey(0), 4)
q = jax.random.normal(ks[0], (b, t, n, h), jnp.bfloat16)
kk = jax.random.normal(ks[1], (b, k, t, h), jnp.bfloat16)  # the cache layout [b, k, s, h]
v = jax.random.normal(ks[2], (b, k, t, h), jnp.bfloat16)
mask = jnp.tril(jnp.ones((t, t), bool))[None].repeat(b, 0)
cot = jax.random.normal(ks[3], (b, t, n, h), jnp.bfloat16)
out = os.environ.get("OUT", "/tmp")
for block in (0, 1024):
    f = jax.jit(jax.grad(lambda q, kk, v: (gqa_attention(q, kk, v, mask, block=block).astype(jnp.float32) * cot).sum(), argnums=(0, 1, 2)))
    jax.block_until_ready(f(q, kk, v))
    best = 1e9
    for _ in range(5):
        s = time.perf_counter(); jax.block_until_ready(f(q, kk, v)); best = min(best, time.perf_counter() - s)
    print(f"block {block}: {best*1e3:.2f} ms value+grad")
    d = f"{out}/trace{block}"
    jax.profiler.start_trace(d)
    jax.block_until_ready(f(q, kk, v))
    jax.profiler.stop_trace()
    files = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)
    if files:
        ev = json.load(gzip.open(files[0]))["traceEvents"]
        tot = collections.Counter()
        for e in ev:
            if e.get("ph") == "X" and e.get("pid") != None:
                tot[e["name"][:70]] += e.get("dur", 0)
        for name, us in tot.most_common(14):
            print(f"   {us/1e3:8.2f} ms  {name}")
