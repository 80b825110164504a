// The CUDA backend's status and device memory as plain values for the
// bindings (napi/info.cc), so binding code needs no CUDA header.
#pragma once
#include <string>

#include "backend/backend.h"

namespace bl::napi {

// Why CUDA is or is not usable, in words (never throws).
std::string cuda_status(bool* usable);

// The CUDA backend's memory; false when CUDA is not compiled in or its
// backend was never created.
bool cuda_device_memory(DeviceMemory* m, bool reset_peak);

}  // namespace bl::napi
