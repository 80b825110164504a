// cuBLAS, loaded at run time with dlopen so that the addon links and loads on
// machines without CUDA libraries. Only the entry points the backend uses are
// declared here, by hand, with the C ABI of cuBLAS 12/13 (enums are ints,
// handles are opaque pointers); no cuBLAS header is needed to build.
//
// Search order: $BAYESLORA_CUBLAS (a path; when set, nothing else is tried),
// then libcublas.so.13, libcublas.so.12, libcublas.so on the loader path.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace bl::cuda::blas {

struct Context;                 // opaque cublasContext
using Handle = Context*;         // cublasHandle_t
using Status = int;             // cublasStatus_t
using Op = int;                 // cublasOperation_t

constexpr Status kSuccess = 0;
constexpr Status kAllocFailed = 3;
constexpr Op kOpN = 0;
constexpr Op kOpT = 1;

// cudaDataType_t values (library_types.h)
constexpr int kR32F = 0;
constexpr int kR64F = 1;
constexpr int kR16BF = 14;

// cublasComputeType_t values
constexpr int kCompute32F = 68;
constexpr int kCompute32FFastTF32 = 77;
constexpr int kCompute64F = 70;

constexpr int kGemmDefault = -1;  // CUBLAS_GEMM_DEFAULT

struct Api {
  std::string path;     // what dlopen resolved
  int version = 0;      // major*10000 + minor*100 + patch, 0 if unknown

  Status (*create)(Handle*) = nullptr;                         // cublasCreate_v2
  Status (*destroy)(Handle) = nullptr;                         // cublasDestroy_v2
  Status (*set_stream)(Handle, cudaStream_t) = nullptr;        // cublasSetStream_v2
  Status (*set_workspace)(Handle, void*, size_t) = nullptr;    // cublasSetWorkspace_v2 (optional)
  Status (*sgemm)(Handle, Op, Op, int, int, int, const float*, const float*, int, const float*,
                  int, const float*, float*, int) = nullptr;  // cublasSgemm_v2
  Status (*sgemm_strided_batched)(Handle, Op, Op, int, int, int, const float*, const float*, int,
                                  long long, const float*, int, long long, const float*, float*,
                                  int, long long, int) = nullptr;  // cublasSgemmStridedBatched
  Status (*dgemm)(Handle, Op, Op, int, int, int, const double*, const double*, int,
                  const double*, int, const double*, double*, int) = nullptr;  // cublasDgemm_v2
  Status (*gemm_ex)(Handle, Op, Op, int, int, int, const void*, const void*, int, int,
                    const void*, int, int, const void*, void*, int, int, int,
                    int) = nullptr;  // cublasGemmEx
  Status (*gemm_strided_batched_ex)(Handle, Op, Op, int, int, int, const void*, const void*, int,
                                    int, long long, const void*, int, int, long long,
                                    const void*, void*, int, int, long long, int, int,
                                    int) = nullptr;  // cublasGemmStridedBatchedEx
  Status (*get_property)(int, int*) = nullptr;               // cublasGetProperty (optional)
  const char* (*status_string)(Status) = nullptr;            // cublasGetStatusString (optional)
};

// Loads once per process (thread-safe). Returns nullptr and fills *why with
// every path tried and its dlerror() when no usable cuBLAS is found.
const Api* load(std::string* why);

// "CUBLAS_STATUS_..." name for messages.
std::string status_name(Status s);

// Throws bl::Error (CUDA_OOM for allocation failures, CUDA_ERROR otherwise)
// when s is not success.
void check(Status s, const char* what);

}  // namespace bl::cuda::blas
