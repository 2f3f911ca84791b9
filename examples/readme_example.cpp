// The README's usage example (built by the build, run by ctest): fit a 1:4 row-wise sparse linear
// map with TANS and Cannistraci-Hebb topology refresh (CHTsNM), in a loop you write yourself.
#include <iostream>

#include <sparsenm/sparsenm.hpp>

int main() {
  using namespace sparsenm;
  const Index out = 64, in = 128, batch = 256;
  const Philox rng(42);  // counter-based: the same numbers for any thread count
  const Matrix<float> x = uniform_matrix<float>(batch, in, rng.split(1)).array() - 0.5f;
  const Matrix<float> teacher = uniform_matrix<float>(out, in, rng.split(2)).array() - 0.5f;
  const Matrix<float> y = x * teacher.transpose();

  RefreshConfig rc;  // CHTsNM row-wise refresh with Motif Pattern Revisitation
  rc.layout = Layout::RowWise, rc.nm = {1, 4}, rc.mpr_rho = 0.5, rc.interval = 50,
  rc.total_steps = 600;
  Mask mask = random_rowwise(out, in, rc.nm, rng.split(3));
  Matrix<float> w = Matrix<float>::Zero(out, in);
  TansConfig tc;
  tc.lr = 0.02;
  Tans<float> opt(out, in, tc);
  TopologyRefresher<float> topology(rc, /*seed=*/7);
  for (long step = 1; step <= rc.total_steps; ++step) {
    const Matrix<float> residual = x * w.transpose() - y;
    const Matrix<float> grad = residual.transpose() * x / float(batch);  // d/dW of |XWᵀ - Y|² / 2B
    opt.step(w, grad, mask);                                             // inactive entries stay 0
    if (topology.due(step)) opt.on_refresh(topology.refresh(w, mask, step).changed);
  }
  const double fit = (x * w.transpose() - y).norm() / y.norm();
  std::cout << "1:4 mask legal: " << is_rowwise_legal(mask, rc.nm) << ", relative residual " << fit
            << " (zero weights give 1)\n";
  return is_rowwise_legal(mask, rc.nm) && fit < 0.9 ? 0 : 1;
}
