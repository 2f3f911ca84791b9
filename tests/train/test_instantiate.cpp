// Explicit instantiation of every class template of the train module for float and double.
#include <sparsenm/train.hpp>

template class sparsenm::DenseLinear<float>;
template class sparsenm::DenseLinear<double>;
template class sparsenm::Relu<float>;
template class sparsenm::Relu<double>;
template bool sparsenm::BatchSampler::next<float>(const sparsenm::Matrix<float>&,
                                                  const std::vector<int>&, sparsenm::Matrix<float>&,
                                                  std::vector<int>&);
template bool sparsenm::BatchSampler::next<double>(const sparsenm::Matrix<double>&,
                                                   const std::vector<int>&,
                                                   sparsenm::Matrix<double>&, std::vector<int>&);
