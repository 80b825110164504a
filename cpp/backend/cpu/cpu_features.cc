// cpuid / xgetbv feature detection. A CPU flag alone is not enough: the OS must
// also save the wider register state (XCR0), or the first AVX instruction
// faults. Both are checked, as libgcc's __builtin_cpu_supports does.
#include "backend/cpu/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BL_X86 1
#endif

namespace bl::cpu {
namespace {

#ifdef BL_X86
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  // xgetbv with ecx = 0; encoded as bytes so no -mxsave is needed for this file.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef BL_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  unsigned max_leaf = a;
  char vendor[13];
  std::memcpy(vendor + 0, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = 0;
  f.vendor = vendor;

  __get_cpuid(1, &a, &b, &c, &d);
  int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  f.family = base_family == 0xf ? base_family + int((a >> 20) & 0xff) : base_family;
  f.model = (base_family == 0x6 || base_family == 0xf) ? (int((a >> 16) & 0xf) << 4) + base_model
                                                        : base_model;
  bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  bool ymm_state = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
  bool zmm_state = ymm_state && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  f.fma = f.fma && avx && ymm_state;

  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = avx && ymm_state && ((b >> 5) & 1);
    if (zmm_state) {
      f.avx512f = (b >> 16) & 1;
      f.avx512dq = f.avx512f && ((b >> 17) & 1);
      f.avx512bw = f.avx512f && ((b >> 30) & 1);
      f.avx512vl = f.avx512f && ((b >> 31) & 1);
    }
  }
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();  // C++11 magic static: thread-safe
  return f;
}

}  // namespace bl::cpu
