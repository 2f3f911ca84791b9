// SPDX-License-Identifier: Apache-2.0
// Explicit instantiation of every class template of optim/ (float and double), so members that no
// test calls still compile.
#include <sparsenm/optim.hpp>

template class sparsenm::Tans<float>;
template class sparsenm::Tans<double>;
template class sparsenm::Adam<float>;
template class sparsenm::Adam<double>;
template class sparsenm::AdamW<float>;
template class sparsenm::AdamW<double>;
template class sparsenm::AdamS<float>;
template class sparsenm::AdamS<double>;
template class sparsenm::Muon<float>;
template class sparsenm::Muon<double>;
template class sparsenm::Ste<float>;
template class sparsenm::Ste<double>;
template struct sparsenm::NsWorkspace<float>;
template struct sparsenm::NsWorkspace<double>;

// Member templates instantiated for the common argument types.
template void sparsenm::Tans<float>::step(Eigen::Ref<sparsenm::Matrix<float>>,
                                          const Eigen::MatrixBase<sparsenm::Matrix<float>>&,
                                          const sparsenm::Mask&);
template void sparsenm::Tans<double>::step(Eigen::Ref<sparsenm::Matrix<double>>,
                                           const Eigen::MatrixBase<sparsenm::Matrix<double>>&,
                                           const sparsenm::Mask&);
template void sparsenm::AdamS<double>::step(Eigen::Ref<sparsenm::Matrix<double>>,
                                            const Eigen::MatrixBase<sparsenm::Matrix<double>>&);
template void sparsenm::Muon<float>::step(Eigen::Ref<sparsenm::Matrix<float>>,
                                          const Eigen::MatrixBase<sparsenm::Matrix<float>>&,
                                          const sparsenm::Mask&);
template sparsenm::Matrix<float> sparsenm::newton_schulz<void, sparsenm::Matrix<float>>(
    const Eigen::MatrixBase<sparsenm::Matrix<float>>&, int, sparsenm::NsCoefficients);
template sparsenm::Matrix<double> sparsenm::newton_schulz<void, sparsenm::Matrix<double>>(
    const Eigen::MatrixBase<sparsenm::Matrix<double>>&, int, sparsenm::NsCoefficients);
