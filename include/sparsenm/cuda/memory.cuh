// SPDX-License-Identifier: Apache-2.0
// RAII owners for device memory, streams, events and cuBLAS handles. The caller controls
// allocation (CUB's rule): the operation classes allocate their state once at construction, and
// nothing is allocated inside a step.
#ifndef SPARSENM_CUDA_MEMORY_CUH
#define SPARSENM_CUDA_MEMORY_CUH

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "error.cuh"

namespace sparsenm {
namespace cuda {

/// Number of CUDA devices; 0 (never an exception) when there is no driver or no GPU, so tests can
/// skip cleanly.
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" status
    return 0;
  }
  return n;
}

/// Multiprocessor count of the current device (grid sizing of the persistent kernels).
inline int sm_count() {
  int device = 0, sms = 0;
  SPARSENM_CUDA_CHECK(cudaGetDevice(&device));
  SPARSENM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

/// An owning, move-only device array of `size()` elements of T (cudaMalloc / cudaFree).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { resize(count); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : m_data(std::exchange(other.m_data, nullptr)), m_size(std::exchange(other.m_size, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      m_data = std::exchange(other.m_data, nullptr);
      m_size = std::exchange(other.m_size, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  /// Reallocates (contents are lost) when the size changes.
  void resize(std::size_t count) {
    if (count == m_size) return;
    release();
    if (count > 0) {
      void* p = nullptr;
      SPARSENM_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
      m_data = static_cast<T*>(p);
      m_size = count;
    }
  }

  T* data() noexcept { return m_data; }
  const T* data() const noexcept { return m_data; }
  std::size_t size() const noexcept { return m_size; }
  std::size_t bytes() const noexcept { return m_size * sizeof(T); }
  bool empty() const noexcept { return m_size == 0; }

  /// Host -> device copy of `count` elements (asynchronous on `stream` for pinned memory).
  void upload(const T* host, std::size_t count, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(count <= m_size, "upload of ", count, " elements into a buffer of ", m_size);
    SPARSENM_CUDA_CHECK(
        cudaMemcpyAsync(m_data, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  void upload(const std::vector<T>& host, cudaStream_t stream = nullptr) {
    resize(host.size());
    upload(host.data(), host.size(), stream);
  }
  /// Device -> host copy; synchronises `stream` so the host data is ready on return.
  void download(T* host, std::size_t count, cudaStream_t stream = nullptr) const {
    SPARSENM_CHECK(count <= m_size, "download of ", count, " elements from a buffer of ", m_size);
    SPARSENM_CUDA_CHECK(
        cudaMemcpyAsync(host, m_data, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  std::vector<T> to_host(cudaStream_t stream = nullptr) const {
    std::vector<T> host(m_size);
    download(host.data(), m_size, stream);
    return host;
  }
  /// Byte-wise fill (cudaMemsetAsync), e.g. zero or a poison pattern in tests.
  void fill_bytes(int value, cudaStream_t stream = nullptr) {
    if (m_size) SPARSENM_CUDA_CHECK(cudaMemsetAsync(m_data, value, bytes(), stream));
  }

 private:
  void release() noexcept {
    if (m_data) cudaFree(m_data);  // never throws from a destructor; errors are sticky anyway
    m_data = nullptr;
    m_size = 0;
  }
  T* m_data = nullptr;
  std::size_t m_size = 0;
};

/// Copies a host Eigen matrix (any storage) to a new device buffer in row-major order.
template <class S>
DeviceBuffer<S> to_device(const Matrix<S>& host, cudaStream_t stream = nullptr) {
  DeviceBuffer<S> d(std::size_t(host.size()));
  if (host.size()) d.upload(host.data(), std::size_t(host.size()), stream);
  return d;
}

/// Copies a device array back into a row-major host matrix of the given shape.
template <class S>
Matrix<S> to_host(const DeviceBuffer<S>& d, Index rows, Index cols, cudaStream_t stream = nullptr) {
  SPARSENM_CHECK(std::size_t(rows * cols) <= d.size(), "to_host: ", rows, "x", cols,
                 " exceeds the buffer of ", d.size());
  Matrix<S> host(rows, cols);
  if (host.size()) d.download(host.data(), std::size_t(host.size()), stream);
  return host;
}

/// An owned, non-blocking CUDA stream.
class Stream {
 public:
  Stream() { SPARSENM_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(m_stream); }
  cudaStream_t get() const noexcept { return m_stream; }
  operator cudaStream_t() const noexcept { return m_stream; }
  void synchronize() const { SPARSENM_CUDA_CHECK(cudaStreamSynchronize(m_stream)); }

 private:
  cudaStream_t m_stream = nullptr;
};

/// An owned CUDA event (timing enabled).
class Event {
 public:
  Event() { SPARSENM_CUDA_CHECK(cudaEventCreate(&m_event)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { cudaEventDestroy(m_event); }
  void record(cudaStream_t stream = nullptr) {
    SPARSENM_CUDA_CHECK(cudaEventRecord(m_event, stream));
  }
  void synchronize() const { SPARSENM_CUDA_CHECK(cudaEventSynchronize(m_event)); }
  /// Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms_since(const Event& start) const {
    float ms = 0;
    SPARSENM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.m_event, m_event));
    return ms;
  }
  cudaEvent_t get() const noexcept { return m_event; }

 private:
  cudaEvent_t m_event = nullptr;
};

/// An owned cuBLAS handle. Operations set the stream on it before each call.
class CublasHandle {
 public:
  CublasHandle() { SPARSENM_CUBLAS_CHECK(cublasCreate(&m_handle)); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() { cublasDestroy(m_handle); }
  cublasHandle_t get() const noexcept { return m_handle; }
  operator cublasHandle_t() const noexcept { return m_handle; }

 private:
  cublasHandle_t m_handle = nullptr;
};

namespace detail {

/// Grid size for a grid-stride elementwise kernel over `count` items with `block` threads.
inline unsigned grid_for(std::size_t count, unsigned block, unsigned max_blocks = 1u << 20) {
  std::size_t blocks = (count + block - 1) / block;
  if (blocks == 0) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return unsigned(blocks);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_MEMORY_CUH
