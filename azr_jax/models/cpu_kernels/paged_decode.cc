// Decode attention over a paged KV cache on CPU (an XLA FFI custom call), reading each row's
// pages in place: one query per row and query head, keys and values in pools of
// [kv_heads, pages, page_size, head_dim] (f32), a page table per row. Row b attends to its
// first lengths[b] positions; position j is page table[b, j / S], offset j % S.
//
// Why: XLA:CPU can only read pages through a gather that copies them (each row's pages
// read, written and read again), which made the paged cache slower per byte than the dense
// one. Here each row reads exactly its live tokens once.
//
// Per row and KV head, pages are taken one at a time: the page's scores for the g query
// heads of the group (scaled, soft-capped when softcap > 0), then an online softmax update of
// the group's running max, sum and output. Rows are split over two threads. Compiled with
// -ffast-math, so no infinities are used: the running max starts at a large negative value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr float kNoMax = -1e30f;

struct Shapes {
  int64_t b, n, h, k, pages, s, width, g;
};

void AttendRows(const Shapes& sh, const float* q, const float* kpool, const float* vpool,
                const int32_t* table, const int32_t* lengths, float scale, float softcap,
                float* out, int64_t b0, int64_t b1) {
  std::vector<float> acc(sh.g * sh.h), score(sh.s), run_max(sh.g), run_sum(sh.g);
  for (int64_t bi = b0; bi < b1; ++bi) {
    const int64_t len = std::clamp<int64_t>(lengths[bi], 0, sh.width * sh.s);
    for (int64_t kh = 0; kh < sh.k; ++kh) {
      const float* q_group = q + (bi * sh.n + kh * sh.g) * sh.h;
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(run_max.begin(), run_max.end(), kNoMax);
      std::fill(run_sum.begin(), run_sum.end(), 0.0f);
      for (int64_t p = 0; p * sh.s < len; ++p) {
        const int64_t page = table[bi * sh.width + p];
        if (page < 0 || page >= sh.pages) continue;  // never for tables the engine builds
        const int64_t count = std::min<int64_t>(sh.s, len - p * sh.s);
        const float* keys = kpool + (kh * sh.pages + page) * sh.s * sh.h;
        const float* values = vpool + (kh * sh.pages + page) * sh.s * sh.h;
        for (int64_t gi = 0; gi < sh.g; ++gi) {
          const float* qv = q_group + gi * sh.h;
          float page_max = kNoMax;
          for (int64_t t = 0; t < count; ++t) {
            const float* kv = keys + t * sh.h;
            float dot = 0.0f;
            for (int64_t d = 0; d < sh.h; ++d) dot += qv[d] * kv[d];
            dot *= scale;
            if (softcap > 0.0f) dot = softcap * std::tanh(dot / softcap);
            score[t] = dot;
            page_max = std::max(page_max, dot);
          }
          const float new_max = std::max(run_max[gi], page_max);
          const float rescale = std::exp(run_max[gi] - new_max);
          float* a = acc.data() + gi * sh.h;
          for (int64_t d = 0; d < sh.h; ++d) a[d] *= rescale;
          float sum = run_sum[gi] * rescale;
          for (int64_t t = 0; t < count; ++t) {
            const float e = std::exp(score[t] - new_max);
            sum += e;
            const float* vv = values + t * sh.h;
            for (int64_t d = 0; d < sh.h; ++d) a[d] += e * vv[d];
          }
          run_max[gi] = new_max;
          run_sum[gi] = sum;
        }
      }
      for (int64_t gi = 0; gi < sh.g; ++gi) {
        float* o = out + (bi * sh.n + kh * sh.g + gi) * sh.h;
        const float inv = run_sum[gi] > 0.0f ? 1.0f / run_sum[gi] : 0.0f;
        for (int64_t d = 0; d < sh.h; ++d) o[d] = acc[gi * sh.h + d] * inv;
      }
    }
  }
}

ffi::Error PagedDecodeImpl(ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> kpool,
                           ffi::Buffer<ffi::F32> vpool, ffi::Buffer<ffi::S32> table,
                           ffi::Buffer<ffi::S32> lengths, ffi::ResultBuffer<ffi::F32> out,
                           float scale, float softcap) {
  auto qd = q.dimensions(), kd = kpool.dimensions(), td = table.dimensions();
  auto vd = vpool.dimensions();
  const bool same_pools = vd.size() == kd.size() && std::equal(vd.begin(), vd.end(), kd.begin());
  if (qd.size() != 3 || kd.size() != 4 || td.size() != 2 || !same_pools ||
      lengths.dimensions().size() != 1 || td[0] != qd[0] || lengths.dimensions()[0] != qd[0] ||
      kd[3] != qd[2] || kd[0] == 0 || qd[1] % kd[0] != 0) {
    return ffi::Error::InvalidArgument(
        "paged_decode: q [b, n, h], pools [k, pages, S, h] with k dividing n, table [b, W], "
        "lengths [b]");
  }
  const Shapes sh{qd[0], qd[1], qd[2], kd[0], kd[1], kd[2], td[1], qd[1] / kd[0]};
  auto run = [&](int64_t b0, int64_t b1) {
    AttendRows(sh, q.typed_data(), kpool.typed_data(), vpool.typed_data(), table.typed_data(),
               lengths.typed_data(), scale, softcap, out->typed_data(), b0, b1);
  };
  if (sh.b >= 2) {  // XLA:CPU runs a custom call on one thread; the rows split over two
    std::thread other(run, sh.b / 2, sh.b);
    run(0, sh.b / 2);
    other.join();
  } else {
    run(0, sh.b);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AzrPagedDecode, PagedDecodeImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("scale")
                                  .Attr<float>("softcap"));
