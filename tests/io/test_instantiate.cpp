// Explicit instantiation of every member template of the io module for each supported element
// type, so members no test calls still compile.
#include <cstdint>

#include <sparsenm/io.hpp>

#define SPARSENM_IO_INSTANTIATE(T)                                                                \
  template Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>                      \
  sparsenm::Tensor::to_matrix<T>(bool) const;                                                     \
  template Eigen::Matrix<T, Eigen::Dynamic, 1> sparsenm::Tensor::to_vector<T>() const;            \
  template sparsenm::Tensor sparsenm::Tensor::from_eigen(                                         \
      const Eigen::DenseBase<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>&, \
      bool);

SPARSENM_IO_INSTANTIATE(float)
SPARSENM_IO_INSTANTIATE(double)
SPARSENM_IO_INSTANTIATE(std::uint8_t)
SPARSENM_IO_INSTANTIATE(std::int32_t)
SPARSENM_IO_INSTANTIATE(std::int64_t)
