// SPDX-License-Identifier: Apache-2.0
// Compiles every CUDA header and instantiates every class template and host entry point for float
// and double, so members that no test calls still compile (also the ctest cuda_header_compile
// test of CPU-only builds, which compiles this file with the machine's nvcc without running it).
#include <sparsenm/cuda.cuh>
#include <sparsenm/cuda.cuh>  // the include guards must work

namespace sc = sparsenm::cuda;
using sparsenm::Index;
using sparsenm::NM;

template class sc::DeviceBuffer<float>;
template class sc::DeviceBuffer<double>;
template class sc::NewtonSchulz<float>;
template class sc::NewtonSchulz<double>;
template class sc::Tans<float>;
template class sc::Tans<double>;
template class sc::TansCompressed<float>;
template class sc::TansCompressed<double>;
template class sc::Adam<float>;
template class sc::Adam<double>;
template class sc::AdamS<float>;
template class sc::AdamS<double>;
template class sc::ChScores<float>;
template class sc::ChScores<double>;

template void sc::project_rowwise<float>(const float*, Index, Index, NM, std::uint8_t*,
                                         cudaStream_t, int*);
template void sc::project_rowwise<double>(const double*, Index, Index, NM, std::uint8_t*,
                                          cudaStream_t, int*);
template void sc::project_transposable<float>(const float*, Index, Index, NM, std::uint8_t*,
                                              cudaStream_t, int*);
template void sc::project_transposable<double>(const double*, Index, Index, NM, std::uint8_t*,
                                               cudaStream_t, int*);
template sparsenm::Mask sc::project_rowwise<float>(const sparsenm::Matrix<float>&, NM,
                                                   cudaStream_t);
template sparsenm::Mask sc::project_rowwise<double>(const sparsenm::Matrix<double>&, NM,
                                                    cudaStream_t);
template sparsenm::Mask sc::project_transposable<float>(const sparsenm::Matrix<float>&, NM,
                                                        cudaStream_t);
template sparsenm::Mask sc::project_transposable<double>(const sparsenm::Matrix<double>&, NM,
                                                         cudaStream_t);
template sparsenm::Matrix<float> sc::frechet_scores<float>(const sparsenm::Matrix<float>&, double,
                                                           const sparsenm::Philox&, cudaStream_t);
template sparsenm::Matrix<double> sc::frechet_scores<double>(const sparsenm::Matrix<double>&,
                                                             double, const sparsenm::Philox&,
                                                             cudaStream_t);
template sparsenm::Matrix<float> sc::uniform_perturb<float>(const sparsenm::Matrix<float>&,
                                                            const sparsenm::Philox&, cudaStream_t);
template sparsenm::Matrix<double> sc::uniform_perturb<double>(const sparsenm::Matrix<double>&,
                                                              const sparsenm::Philox&,
                                                              cudaStream_t);
template sparsenm::Matrix<float> sc::ch2_l3n_scores<float>(const sparsenm::Mask&, sparsenm::ChRule,
                                                           cudaStream_t);
template sparsenm::Matrix<double> sc::ch2_l3n_scores<double>(const sparsenm::Mask&,
                                                             sparsenm::ChRule, cudaStream_t);
template sparsenm::Matrix<float> sc::newton_schulz<float>(const sparsenm::Matrix<float>&, int,
                                                          sparsenm::NsCoefficients, sc::NsPrecision,
                                                          cudaStream_t);
template sparsenm::Matrix<double> sc::newton_schulz<double>(const sparsenm::Matrix<double>&, int,
                                                            sparsenm::NsCoefficients,
                                                            sc::NsPrecision, cudaStream_t);
template sc::Sparse14::Sparse14(const sparsenm::NMCompressed<float>&, cudaStream_t);
template sc::Sparse14::Sparse14(const sparsenm::NMCompressed<double>&, cudaStream_t);
#if defined(SPARSENM_HAS_CUSPARSELT)
template sc::Sparse24::Sparse24(const sparsenm::NMCompressed<float>&, Index, bool, cudaStream_t);
template sc::Sparse24::Sparse24(const sparsenm::NMCompressed<double>&, Index, bool, cudaStream_t);
#endif
