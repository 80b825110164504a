// The built-in SGEMM driver (BLIS-style loop nest): for each kc x nc block of
// op(B) (packed once, shared by all threads; several K blocks at a time when
// they fit one block's budget) and each mc x kc block of op(A) (packed per
// thread into an L2-sized buffer), the micro-kernel sweeps NR-wide B
// micro-panels (L1-resident) against MR-tall A micro-panels. Threads split the
// M blocks, and the N panels too when M alone gives too few blocks. Called
// from inside a pool worker, everything runs inline on that thread.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/gemm.h"
#include "backend/cpu/gemm_kernel.h"
#include "core/error.h"
#include "core/threads.h"

namespace bl::cpu {
namespace {

// A grow-only 64-byte aligned scratch buffer, one per thread and purpose, so
// that repeated GEMMs allocate nothing.
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) fail(code::kOutOfMemory, "gemm: cannot allocate ", bytes, " bytes of packing space");
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch tl_pack_a, tl_pack_b;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A partial tile: the kernel writes alpha=1, beta=0 into a local tile, then
// the valid m x n corner is merged with the same alpha/beta semantics.
void edge_tile(const GemmKernel& kern, int kc, const float* Ap, const float* Bp, float* C,
               int64_t ldc, int m, int n, float alpha, float beta) {
  alignas(64) float tile[32 * 32];  // >= mr * nr of every kernel
  static const float kPlain[2] = {1.0f, 0.0f};
  kern.tile(kc, Ap, Bp, tile, kern.nr, kPlain);
  for (int r = 0; r < m; ++r) {
    float* c = C + r * ldc;
    const float* t = tile + r * kern.nr;
    if (beta == 0.0f)
      for (int j = 0; j < n; ++j) c[j] = alpha * t[j];
    else
      for (int j = 0; j < n; ++j) c[j] = alpha * t[j] + beta * c[j];
  }
}

// Below this many multiply-adds a pool wake-up (~10 us on the 2-core dev VM)
// costs more than the second thread saves (measured: 64^3 ran 1.5x slower
// threaded than OpenBLAS's single thread; ~100^3 breaks even). Measured when
// pool workers slept between jobs; a spinning worker (core/threads.cc) starts
// sooner, so the break-even may now be lower (not re-measured).
constexpr int64_t kParallelMinWork = int64_t(100) * 100 * 100;

}  // namespace

void scale_c(int M, int N, float beta, float* C, int64_t ldc) {
  if (beta == 1.0f) return;
  size_t grain = std::max<size_t>(1, (1 << 16) / size_t(N));
  parallel_for(size_t(M), grain, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float* c = C + int64_t(i) * ldc;
      if (beta == 0.0f)
        std::memset(c, 0, size_t(N) * sizeof(float));
      else
        for (int j = 0; j < N; ++j) c[j] *= beta;
    }
  });
}

void sgemm_with_kernel(const GemmKernel& kern, bool ta, bool tb, int M, int N, int K, float alpha,
                       const float* A, int lda, const float* B, int ldb, float beta, float* C,
                       int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {  // no product term: only the beta scaling remains
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const int MR = kern.mr, NR = kern.nr;
  const int64_t work = int64_t(M) * N * K;
  const int nt = work < kParallelMinWork ? 1 : std::max(1, num_threads());

  // M blocks: at most kern.mc rows; with several threads the count is a
  // multiple of the thread count and the MR-row micro-panels are dealt out
  // evenly (block b starts at micro-panel floor(b * mpanels / mblocks)), so
  // M = 1024 splits 512/512 rather than 576/448.
  const int64_t mpanels = ceil_div(M, MR);
  int64_t mblocks = ceil_div(mpanels, kern.mc / MR);
  if (nt > 1 && mpanels >= nt) mblocks = std::min(mpanels, ceil_div(mblocks, nt) * nt);
  const int mc = int(ceil_div(mpanels, mblocks) * MR);  // the tallest block
  auto block_row = [&](int64_t b) { return int(std::min<int64_t>(M, b * mpanels / mblocks * MR)); };

  // op(B) is packed for a group of K blocks at once (up to kc*nc floats, the
  // same budget as one full block), so that narrow N or short K runs as one
  // packing region and one compute region instead of two per K block.
  const int nc_max = std::min(kern.nc, int(ceil_div(N, NR) * NR));
  const int kc_max = std::min(kern.kc, K);
  const int64_t kblocks_total = ceil_div(K, kern.kc);
  const int64_t kgroup = std::clamp<int64_t>(int64_t(kern.kc) * kern.nc / (int64_t(kc_max) * nc_max),
                                             1, kblocks_total);
  const int64_t bblock = int64_t(kc_max) * nc_max;  // floats per packed K block
  float* Bp_all = tl_pack_b.get(size_t(bblock * kgroup));

  for (int jc = 0; jc < N; jc += kern.nc) {
    const int nc = std::min(kern.nc, N - jc);
    const int npanels = int(ceil_div(nc, NR));
    // Split N panels across threads only when M blocks are too few.
    const int nsplit = mblocks >= nt ? 1 : int(std::min<int64_t>(npanels, ceil_div(nt, mblocks)));
    for (int64_t kb0 = 0; kb0 < kblocks_total; kb0 += kgroup) {
      const int nkb = int(std::min(kgroup, kblocks_total - kb0));

      // Pack: items are (K block, chunk of panels); chunks of >= ~64 KiB.
      const int chunk = nt == 1 ? npanels : std::max(1, std::min(npanels, 16384 / (kc_max * NR)));
      const int nchunks = int(ceil_div(npanels, chunk));
      parallel_for(size_t(nkb) * nchunks, 1, [&](size_t b, size_t e) {
        for (size_t it = b; it < e; ++it) {
          const int kb = int(it / nchunks), ch = int(it % nchunks);
          const int pc = int((kb0 + kb) * kern.kc), kc = std::min(kern.kc, K - pc);
          const int j0 = ch * chunk * NR, ncols = std::min(nc - j0, chunk * NR);
          kern.pack_b(tb, B, ldb, pc, kc, int64_t(jc) + j0, ncols,
                      Bp_all + kb * bblock + int64_t(j0) * kc);
        }
      });

      // Compute: items are (M block, share of the N panels); each walks the
      // group's K blocks, packing its A block for each.
      const size_t items = size_t(mblocks) * nsplit;
      parallel_for(items, nt == 1 ? items : 1, [&](size_t b, size_t e) {
        float* Ap = tl_pack_a.get(size_t(mc) * kc_max);
        for (size_t it = b; it < e; ++it) {
          const int64_t ib = int64_t(it) / nsplit;
          const int js = int(int64_t(it) % nsplit);
          const int i0 = block_row(ib), m = block_row(ib + 1) - i0;
          const int p_begin = int(int64_t(npanels) * js / nsplit);
          const int p_end = int(int64_t(npanels) * (js + 1) / nsplit);
          for (int kb = 0; kb < nkb; ++kb) {
            const int pc = int((kb0 + kb) * kern.kc), kc = std::min(kern.kc, K - pc);
            // Later K blocks accumulate onto what the first one wrote.
            const float blk_beta = pc == 0 ? beta : 1.0f;
            const float ab[2] = {alpha, blk_beta};
            const float* Bp = Bp_all + kb * bblock;
            kern.pack_a(ta, A, lda, i0, m, pc, kc, Ap);
            for (int jp = p_begin; jp < p_end; ++jp) {
              const int j = jp * NR, n = std::min(NR, nc - j);
              const float* bpanel = Bp + int64_t(j) * kc;
              for (int ip = 0; ip < m; ip += MR) {
                const int mm = std::min(MR, m - ip);
                float* c = C + int64_t(i0 + ip) * ldc + jc + j;
                const float* apanel = Ap + int64_t(ip) * kc;
                if (mm == MR && n == NR)
                  kern.tile(kc, apanel, bpanel, c, ldc, ab);
                else
                  edge_tile(kern, kc, apanel, bpanel, c, ldc, mm, n, alpha, blk_beta);
              }
            }
          }
        }
      });
    }
  }
}

std::vector<const GemmKernel*> gemm_available_kernels() {
  std::vector<const GemmKernel*> out;
  for (const GemmKernel* k : {gemm_kernel_avx512(), gemm_kernel_avx2(), gemm_kernel_avx2_12x32(),
                              gemm_kernel_scalar()})
    if (k) out.push_back(k);
  return out;
}

const GemmKernel* gemm_kernel_by_name(const char* name) {
  for (const GemmKernel* k : gemm_available_kernels())
    if (std::strcmp(k->name, name) == 0) return k;
  return nullptr;
}

const GemmKernel& gemm_default_kernel() {
  static const GemmKernel* chosen = [] {
    // $BAYESLORA_SIMD caps the level (e.g. to test the AVX2 path on an
    // AVX-512 machine); it never enables what the CPU lacks.
    std::string cap;
    if (const char* e = std::getenv("BAYESLORA_SIMD")) cap = e;
    const GemmKernel* order[] = {cap == "avx2" || cap == "scalar" ? nullptr : gemm_kernel_avx512(),
                                 cap == "scalar" ? nullptr : gemm_kernel_avx2(),
                                 gemm_kernel_scalar()};
    for (const GemmKernel* k : order)
      if (k) return k;
    return gemm_kernel_scalar();
  }();
  return *chosen;
}

void sgemm_builtin(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm_with_kernel(gemm_default_kernel(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace bl::cpu
