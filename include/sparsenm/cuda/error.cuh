// SPDX-License-Identifier: Apache-2.0
// Error model of the CUDA backend: every CUDA runtime / cuBLAS / cuSPARSELt call is checked, and a
// failure throws sparsenm::cuda::Error (a sparsenm::Error, so one catch covers CPU and GPU misuse)
// whose message names the call, the file:line and the library's status code and text. Device code
// never throws. Kernel launches are checked with cudaGetLastError right after the launch.
#ifndef SPARSENM_CUDA_ERROR_CUH
#define SPARSENM_CUDA_ERROR_CUH

#include <string>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../core/error.hpp"

namespace sparsenm {
namespace cuda {

/// A failed CUDA / cuBLAS / cuSPARSELt call. `code()` is the library's numeric status.
class Error : public sparsenm::Error {
 public:
  Error(const std::string& message, int code) : sparsenm::Error(message), m_code(code) {}
  int code() const noexcept { return m_code; }

 private:
  int m_code;
};

namespace detail {

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "CUBLAS_STATUS_<unknown>";
  }
}

[[noreturn]] inline void raise_cuda(const char* call, const char* file, int line, int code,
                                    const char* name, const char* text) {
  throw ::sparsenm::cuda::Error(
      ::sparsenm::detail::concat("sparsenm::cuda: ", call, " failed at ", file, ":", line, " with ",
                                 name, " (", code, "): ", text),
      code);
}

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    raise_cuda(call, file, line, int(status), cudaGetErrorName(status), cudaGetErrorString(status));
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    raise_cuda(call, file, line, int(status), cublas_status_name(status), "cuBLAS call failed");
}

/// After a <<<>>> launch: a bad configuration shows up here, not at the next synchronisation.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    raise_cuda(kernel, file, line, int(status), cudaGetErrorName(status),
               cudaGetErrorString(status));
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

/// Checks a cudaError_t-returning call: SPARSENM_CUDA_CHECK(cudaMalloc(&p, n)).
#define SPARSENM_CUDA_CHECK(call) \
  ::sparsenm::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
/// Checks a cublasStatus_t-returning call.
#define SPARSENM_CUBLAS_CHECK(call) \
  ::sparsenm::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)
/// Checks the launch that was just issued (name = the kernel, for the message).
#define SPARSENM_CUDA_CHECK_LAUNCH(name) \
  ::sparsenm::cuda::detail::check_launch(name, __FILE__, __LINE__)

#endif  // SPARSENM_CUDA_ERROR_CUH
