// Explicit instantiation of every class template of the topology module for float and double, so
// members that no test calls still compile (Sophus' practice).
#include <sparsenm/topology.hpp>

template class sparsenm::TopologyRefresher<float>;
template class sparsenm::TopologyRefresher<double>;
template struct sparsenm::detail::ChWorkspace<float>;
template struct sparsenm::detail::ChWorkspace<double>;
