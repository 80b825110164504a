// What the host CPU (and the OS, for the wider register state) lets kernels use.
// Detected once with cpuid/xgetbv on x86-64; every flag is false elsewhere, so
// callers fall back to portable code.
#pragma once
#include <string>

namespace bl::cpu {

struct CpuFeatures {
  std::string vendor;     // "GenuineIntel", "AuthenticAMD", ... ("" when unknown)
  int family = 0;         // display family (base + extended)
  int model = 0;          // display model (base + extended)
  bool avx2 = false;      // AVX2 with OS-enabled YMM state
  bool fma = false;       // FMA3
  bool avx512f = false;   // AVX-512 F with OS-enabled ZMM/opmask state
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  // The AVX-512 subset OpenBLAS's SkylakeX kernels and ours rely on (F, BW, DQ, VL).
  bool avx512() const { return avx512f && avx512bw && avx512dq && avx512vl; }
  bool avx2_fma() const { return avx2 && fma; }
};

// Detected once (thread-safe) and cached.
const CpuFeatures& cpu_features();

}  // namespace bl::cpu
