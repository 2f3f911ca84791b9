// SPDX-License-Identifier: Apache-2.0
// CUDA backend umbrella (CUB's convention: .cuh needs nvcc). Never included by sparsenm.hpp; the
// CPU build never needs nvcc. Link sparsenm::cuda (CMake option SPARSENM_CUDA=ON), which adds
// CUDA::cudart, CUDA::cublas and, when found, cuSPARSELt (then SPARSENM_HAS_CUSPARSELT is defined
// and cuda/sparse24.cuh provides cuda::Sparse24, cuda/sparse_linear24.cuh cuda::SparseLinear24).
//
// Conventions (STYLE.md "CUDA"): namespace sparsenm::cuda; host API in cuda/<op>.cuh, kernels in
// cuda/detail/<op>_kernels.cuh; an explicit cudaStream_t on every call; buffers are owned by RAII
// objects allocated at construction (nothing is allocated inside an optimizer step); bad arguments
// throw sparsenm::Error and failed CUDA / cuBLAS / cuSPARSELt calls throw sparsenm::cuda::Error
// (a sparsenm::Error) naming the call and its status code.
#ifndef SPARSENM_CUDA_CUH
#define SPARSENM_CUDA_CUH

#include "cuda/error.cuh"
#include "cuda/memory.cuh"
#include "cuda/projection.cuh"
#include "cuda/sampling.cuh"
#include "cuda/ch_scores.cuh"
#include "cuda/newton_schulz.cuh"
#include "cuda/tans.cuh"
#include "cuda/adam.cuh"
#include "cuda/decode14.cuh"
#include "cuda/sparse24.cuh"
#include "cuda/sparse_linear24.cuh"
#include "cuda/refresh24.cuh"
#include "cuda/decode14_route.cuh"

#endif  // SPARSENM_CUDA_CUH
