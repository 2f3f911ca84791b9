// SPDX-License-Identifier: Apache-2.0
// The Fashion-MNIST MLP of examples/fashion_mnist.cpp (784 -> 1024 -> 1024 -> 10, ReLU, softmax
// cross-entropy) trained on the GPU with CHTs24 2:4 (issue 22's end-to-end check): both hidden
// layers are cuda::SparseLinear24 with transposable 2:4 masks (forward and dX on cuSPARSELt,
// active-only dW, Adam or TANS on the compressed fp32 state, bf16 activations), the topology
// refresh runs on the device (cuda::DeviceRefresher24: CHTs24 Alg. 1, the optimizer state
// remapped on the device; --cpu-refresh: the round trip through the CPU engine,
// SparseLinear24::refresh), and the dense 10-way head, the loss and the ReLUs are small fp32
// kernels of this file. Built only with -DSPARSENM_CUDA=ON and cuSPARSELt.
//
// The run reproduces the CPU example's chts24 recipe step for step: the same initial weights and
// masks (the CPU SparseLinear / DenseLinear constructors with the same Philox streams), the same
// mini-batches (BatchSampler), the same cosine step size, refresh interval and refresher seeds;
// only the arithmetic differs (bf16 tensor-core products and bf16 activations instead of fp32).
// Compare with `fashion_mnist --method chts24 --nm 2:4` for the same --epochs / --seed / --seeds;
// with --optimizer tans (cuda::TansCompressed on the layers' values, Adam on biases and head,
// batch --tans-batch = 512 and the step size scaled by min(2, sqrt(512 / 128)) as the CPU example
// does for TANS) with `fashion_mnist --method chtsnm --nm 2:4 --layout block`.
//
//   fashion_mnist_gpu [--epochs E] [--seed S] [--seeds K] [--batch B] [--lr LR] [--data DIR]
//                     [--train-limit N] [--optimizer adam|tans] [--tans-batch B] [--cpu-refresh]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/nn/sparse_linear.hpp>
#include <sparsenm/topology/refresh.hpp>
#include <sparsenm/train/batching.hpp>
#include <sparsenm/train/dense_linear.hpp>
#include <sparsenm/train/idx.hpp>  // needs zlib
#include <sparsenm/train/progress.hpp>

#include "../example_util.hpp"

#if !defined(SPARSENM_HAS_CUSPARSELT)
int main() {
  std::fprintf(stderr, "fashion_mnist_gpu needs cuSPARSELt (SPARSENM_HAS_CUSPARSELT)\n");
  return 1;
}
#else

namespace sc = sparsenm::cuda;
using sparsenm::Index;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;
using sparsenm::Vector;
using bf16 = __nv_bfloat16;

// =============================================================================================
// Small kernels: ReLU, the dense head (1024 -> 10), softmax cross-entropy
// =============================================================================================
constexpr int kClasses = 10;

/// h = max(h, 0) in place (bf16).
__global__ void relu_kernel(bf16* h, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    if (!(__bfloat162float(h[i]) > 0.f)) h[i] = __float2bfloat16(0.f);
}

/// g = g where a > 0, else 0 (the ReLU backward; a is the ReLU's output).
__global__ void relu_backward_kernel(const bf16* a, bf16* g, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    if (!(__bfloat162float(a[i]) > 0.f)) g[i] = __float2bfloat16(0.f);
}

/// logits (T x 10, fp32) = a (T x K, bf16) Wᵀ (W: 10 x K fp32) + b. Block = one row, warp = class.
__global__ void head_forward_kernel(const bf16* a, const float* w, const float* b, int K,
                                    float* logits) {
  const int row = blockIdx.x, c = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (c >= kClasses) return;
  const bf16* ar = a + std::size_t(row) * K;
  const float* wc = w + std::size_t(c) * K;
  float s = 0.f;
  for (int k = lane; k < K; k += 32) s += __bfloat162float(ar[k]) * wc[k];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if (lane == 0) logits[row * kClasses + c] = s + b[c];
}

/// One block of T threads (T = rows, <= 1024, a power of two): row i's softmax cross-entropy
/// against labels[i] (-1: a padding row: no loss, zero gradient); grad = (p - onehot) / n_valid
/// as train/loss.hpp; acc[0] += sum of the losses, acc[1] += correct argmaxes (fixed-order
/// reduction: deterministic).
__global__ void softmax_xent_kernel(const float* logits, const int* labels, int n_valid,
                                    float* grad, double* acc) {
  extern __shared__ double red[];
  const int i = threadIdx.x, T = blockDim.x;
  const int y = labels[i];
  const float* l = logits + i * kClasses;
  double loss = 0, correct = 0;
  if (y >= 0) {
    float shift = l[0];
    int best = 0;
    for (int c = 1; c < kClasses; ++c) {
      if (l[c] > shift) shift = l[c];
      if (l[c] > l[best]) best = c;
    }
    double sum = 0;
    for (int c = 0; c < kClasses; ++c) sum += exp(double(l[c] - shift));
    const double log_z = log(sum) + double(shift);
    loss = log_z - double(l[y]);
    correct = best == y ? 1.0 : 0.0;
    for (int c = 0; c < kClasses; ++c)
      grad[i * kClasses + c] = float((exp(double(l[c]) - log_z) - (c == y ? 1.0 : 0.0)) / n_valid);
  } else {
    for (int c = 0; c < kClasses; ++c) grad[i * kClasses + c] = 0.f;
  }
  red[i] = loss;
  red[T + i] = correct;
  __syncthreads();
  for (int s = T / 2; s > 0; s >>= 1) {
    if (i < s) red[i] += red[i + s], red[T + i] += red[T + i + s];
    __syncthreads();
  }
  if (i == 0) acc[0] += red[0], acc[1] += red[T];
}

/// dW (10 x K) = gᵀ a, db = column sums of g (fixed order over the T rows).
__global__ void head_grad_kernel(const float* g, const bf16* a, int T, int K, float* dw,
                                 float* db) {
  const std::size_t n = std::size_t(kClasses) * K;
  for (std::size_t e = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; e < n;
       e += std::size_t(gridDim.x) * blockDim.x) {
    const int c = int(e / K), k = int(e % K);
    float s = 0.f;
    for (int t = 0; t < T; ++t)
      s += g[t * kClasses + c] * __bfloat162float(a[std::size_t(t) * K + k]);
    dw[e] = s;
  }
  if (blockIdx.x == 0 && threadIdx.x < kClasses) {
    float s = 0.f;
    for (int t = 0; t < T; ++t) s += g[t * kClasses + threadIdx.x];
    db[threadIdx.x] = s;
  }
}

/// da (T x K, bf16) = g W, masked by the ReLU (a > 0): the gradient into the second layer's y.
__global__ void head_dx_kernel(const float* g, const float* w, const bf16* a, int T, int K,
                               bf16* da) {
  const std::size_t n = std::size_t(T) * K;
  for (std::size_t e = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; e < n;
       e += std::size_t(gridDim.x) * blockDim.x) {
    const int t = int(e / K), k = int(e % K);
    float s = 0.f;
    for (int c = 0; c < kClasses; ++c) s += g[t * kClasses + c] * w[std::size_t(c) * K + k];
    da[e] = __float2bfloat16(__bfloat162float(a[e]) > 0.f ? s : 0.f);
  }
}

unsigned blocks_for(std::size_t n) {
  return unsigned(std::min<std::size_t>((n + 255) / 256, 4096));
}

// =============================================================================================
// Options and data
// =============================================================================================
struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  int epochs = 4, batch = 128, seeds = 1;
  std::uint64_t seed = 1;
  double lr = 1e-3;
  Index train_limit = 0;
  bool tans = false;         // --optimizer tans
  int tans_batch = 512;      // the CPU example's --tans-batch default (0: --batch)
  bool cpu_refresh = false;  // --cpu-refresh: the CPU-engine round trip
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SPARSENM_CHECK(i + 1 < argc, "option ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--epochs")
      o.epochs = std::stoi(value());
    else if (a == "--batch")
      o.batch = std::stoi(value());
    else if (a == "--seed")
      o.seed = std::stoull(value());
    else if (a == "--seeds")
      o.seeds = std::stoi(value());
    else if (a == "--lr")
      o.lr = std::stod(value());
    else if (a == "--data")
      o.data = value();
    else if (a == "--train-limit")
      o.train_limit = std::stol(value());
    else if (a == "--optimizer") {
      const std::string v = value();
      SPARSENM_CHECK(v == "adam" || v == "tans", "--optimizer = ", v, " must be adam or tans");
      o.tans = v == "tans";
    } else if (a == "--tans-batch")
      o.tans_batch = std::stoi(value());
    else if (a == "--cpu-refresh")
      o.cpu_refresh = true;
    else {
      std::printf(
          "usage: fashion_mnist_gpu [--epochs E] [--seed S] [--seeds K] [--batch B] [--lr LR]\n"
          "                         [--data DIR] [--train-limit N] [--optimizer adam|tans]\n"
          "                         [--tans-batch B] [--cpu-refresh]\n");
      SPARSENM_CHECK(a == "--help", "unknown option '", a, "'");
      std::exit(0);
    }
  }
  sparsenm::check_at_least(o.epochs, 1, "--epochs");
  sparsenm::check_at_least(o.seeds, 1, "--seeds");
  sparsenm::check_finite_positive(o.lr, "--lr");
  SPARSENM_CHECK(o.batch >= 16 && o.batch <= 1024 && (o.batch & (o.batch - 1)) == 0,
                 "--batch = ", o.batch, " must be a power of two in [16, 1024]");
  SPARSENM_CHECK(o.tans_batch == 0 || (o.tans_batch >= 16 && o.tans_batch <= 1024 &&
                                       (o.tans_batch & (o.tans_batch - 1)) == 0),
                 "--tans-batch = ", o.tans_batch, " must be 0 or a power of two in [16, 1024]");
  return o;
}

struct Data {
  sparsenm::IdxDataset train, test;
};

// =============================================================================================
// The model on the device
// =============================================================================================
struct GpuModel {
  Index T;  // rows per step (the batch; the last, smaller batch is padded with zero rows)
  std::unique_ptr<sc::SparseLinear24> l1, l2;
  sc::DeviceBuffer<float> wh, bh, dwh, dbh, logits, glogits;
  std::unique_ptr<sc::Adam<float>> adam_wh, adam_bh;
  sc::DeviceBuffer<bf16> x, a1, a2, d1, d2;
  sc::DeviceBuffer<int> labels;
  sc::DeviceBuffer<double> acc;

  // Forward of the whole model on x (already uploaded): logits.
  void forward(cudaStream_t s) {
    l1->forward(x.data(), a1.data(), s);
    relu_kernel<<<blocks_for(a1.size()), 256, 0, s>>>(a1.data(), a1.size());
    l2->forward(a1.data(), a2.data(), s);
    relu_kernel<<<blocks_for(a2.size()), 256, 0, s>>>(a2.data(), a2.size());
    head_forward_kernel<<<unsigned(T), 32 * kClasses, 0, s>>>(a2.data(), wh.data(), bh.data(), 1024,
                                                              logits.data());
    SPARSENM_CUDA_CHECK_LAUNCH("forward kernels");
  }
};

struct RunResult {
  std::vector<double> epoch_test;
  double train_seconds = 0, refresh_seconds = 0;
  long steps = 0, refreshes = 0;
};

void upload_batch(GpuModel& m, const Matrix<float>& x, const std::vector<int>& y,
                  std::vector<bf16>& hx, std::vector<int>& hy, cudaStream_t s) {
  const Index n = x.rows(), K = x.cols();
  std::fill(hx.begin(), hx.end(), __float2bfloat16(0.f));
  std::fill(hy.begin(), hy.end(), -1);
  for (Index k = 0; k < n * K; ++k) hx[std::size_t(k)] = __float2bfloat16(x.data()[k]);
  for (Index i = 0; i < n; ++i) hy[std::size_t(i)] = y[std::size_t(i)];
  // Pageable sources: the copies are staged before the calls return (the vectors are reused).
  SPARSENM_CUDA_CHECK(
      cudaMemcpyAsync(m.x.data(), hx.data(), hx.size() * sizeof(bf16), cudaMemcpyHostToDevice, s));
  SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m.labels.data(), hy.data(), hy.size() * sizeof(int),
                                      cudaMemcpyHostToDevice, s));
}

double evaluate(GpuModel& m, const sparsenm::IdxDataset& d, std::vector<bf16>& hx,
                std::vector<int>& hy, cudaStream_t s) {
  std::vector<float> logits(std::size_t(m.T) * kClasses);
  Index correct = 0;
  for (Index b = 0; b < d.images.rows(); b += m.T) {
    const Index n = std::min(m.T, d.images.rows() - b);
    const Matrix<float> x = d.images.middleRows(b, n);
    const std::vector<int> y(d.labels.begin() + b, d.labels.begin() + b + n);
    upload_batch(m, x, y, hx, hy, s);
    m.forward(s);
    m.logits.download(logits.data(), logits.size(), s);
    for (Index i = 0; i < n; ++i) {
      const float* l = logits.data() + i * kClasses;
      correct += (std::max_element(l, l + kClasses) - l) == y[std::size_t(i)];
    }
  }
  return 100.0 * double(correct) / double(d.images.rows());
}

RunResult run(const Options& o, const Data& data, std::uint64_t seed, cudaStream_t s) {
  const Philox rng(seed);
  // TANS runs at --tans-batch with the step size scaled by sqrt(batch ratio), capped at 2x (the
  // CPU example's rule).
  const Index T = o.tans && o.tans_batch > 0 ? o.tans_batch : o.batch;
  // The CPU example's initial model: hidden layer k from rng.split(100 + k) (random legal
  // transposable 2:4 mask with nn.Linear's values, bias), head from rng.split(10).split(3).
  sparsenm::SparseLinear<float> h1(784, 1024, NM{2, 4}, sparsenm::Layout::Transposable,
                                   rng.split(100), true);
  sparsenm::SparseLinear<float> h2(1024, 1024, NM{2, 4}, sparsenm::Layout::Transposable,
                                   rng.split(101), true);
  sparsenm::DenseLinear<float> head(1024, kClasses, rng.split(10).split(3));

  sparsenm::BatchSampler sampler(data.train.images.rows(), T, rng.split(20));
  const long steps_per_epoch = long(sampler.batches_per_epoch());
  const long total_steps = steps_per_epoch * o.epochs;
  const double base_lr = o.lr * std::min(2.0, std::sqrt(double(T) / double(o.batch)));

  sc::Linear24Config cfg;
  cfg.adam.lr = base_lr;
  GpuModel m;
  m.T = T;
  m.l1 = std::make_unique<sc::SparseLinear24>(h1.weight(), h1.bias(), T, cfg, s);
  m.l2 = std::make_unique<sc::SparseLinear24>(h2.weight(), h2.bias(), T, cfg, s);
  SPARSENM_CHECK(m.l1->dx_route() == sc::DxRoute::SparseTransposed &&
                     m.l2->dx_route() == sc::DxRoute::SparseTransposed,
                 "fashion_mnist_gpu: the CHTs24 masks must be transposable");
  m.wh = sc::to_device(head.weight(), s);
  m.bh.upload(std::vector<float>(head.bias().data(), head.bias().data() + kClasses), s);
  m.dwh.resize(m.wh.size());
  m.dbh.resize(kClasses);
  m.adam_wh = std::make_unique<sc::Adam<float>>(kClasses, 1024, cfg.adam);
  m.adam_bh = std::make_unique<sc::Adam<float>>(1, kClasses, cfg.adam);
  m.logits.resize(std::size_t(T) * kClasses);
  m.glogits.resize(std::size_t(T) * kClasses);
  m.x.resize(std::size_t(T) * 784);
  m.a1.resize(std::size_t(T) * 1024);
  m.a2.resize(std::size_t(T) * 1024);
  m.d1.resize(std::size_t(T) * 1024);
  m.d2.resize(std::size_t(T) * 1024);
  m.labels.resize(std::size_t(T));
  m.acc.resize(2);

  // The SparseTrainer's refresh schedule of the CPU example (chts24: transposable 2:4, about 40
  // refreshes over the run, MPR off), refresher k seeded Philox(seed * 1000).split(k).stream().
  sparsenm::RefreshConfig rc;
  rc.layout = sparsenm::Layout::Transposable;
  rc.nm = NM{2, 4};
  rc.interval = int(std::clamp<long>(total_steps / 40, 2, 100));
  rc.total_steps = total_steps;
  rc.mpr_rho = 0.0;
  const std::uint64_t seed1 = Philox(seed * 1000).split(0).stream();
  const std::uint64_t seed2 = Philox(seed * 1000).split(1).stream();
  sparsenm::TopologyRefresher<float> topo1(rc, seed1), topo2(rc, seed2);
  sc::DeviceRefresher24 dev1(rc, seed1, 1024, 784), dev2(rc, seed2, 1024, 1024);
  // TANS (chtsnm Sec. 3.2) on the compressed values, the SparseTrainer's TansConfig (defaults,
  // lr = base_lr); the layers' biases keep their Adam (step_bias), as the CPU trainer's.
  sparsenm::TansConfig tc;
  tc.lr = base_lr;
  std::unique_ptr<sc::TansCompressed<float>> tans1, tans2;
  if (o.tans) {
    tans1 = std::make_unique<sc::TansCompressed<float>>(1024, 784, NM{2, 4}, tc);
    tans2 = std::make_unique<sc::TansCompressed<float>>(1024, 1024, NM{2, 4}, tc);
  }
  sc::CublasHandle blas;

  std::vector<bf16> hx(std::size_t(T) * 784);
  std::vector<int> hy(static_cast<std::size_t>(T));
  Matrix<float> x;
  std::vector<int> y;
  RunResult res;
  long step = 0;
  SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    sparsenm::Stopwatch clock;
    double refresh_s = 0;
    sampler.begin(std::uint64_t(epoch));
    m.acc.fill_bytes(0, s);
    Index seen = 0;
    while (sampler.next(data.train.images, data.train.labels, x, y)) {
      const double lr =
          base_lr * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * double(step) / double(total_steps))));
      upload_batch(m, x, y, hx, hy, s);
      m.forward(s);
      softmax_xent_kernel<<<1, unsigned(T), 2 * sizeof(double) * std::size_t(T), s>>>(
          m.logits.data(), m.labels.data(), int(y.size()), m.glogits.data(), m.acc.data());
      head_dx_kernel<<<blocks_for(m.d2.size()), 256, 0, s>>>(
          m.glogits.data(), m.wh.data(), m.a2.data(), int(T), 1024, m.d2.data());
      head_grad_kernel<<<blocks_for(m.dwh.size()), 256, 0, s>>>(
          m.glogits.data(), m.a2.data(), int(T), 1024, m.dwh.data(), m.dbh.data());
      SPARSENM_CUDA_CHECK_LAUNCH("loss and head kernels");
      m.l2->backward(m.d2.data(), m.d1.data(), s);
      relu_backward_kernel<<<blocks_for(m.d1.size()), 256, 0, s>>>(m.a1.data(), m.d1.data(),
                                                                   m.d1.size());
      SPARSENM_CUDA_CHECK_LAUNCH("relu_backward_kernel");
      m.l1->backward(m.d1.data(), nullptr, s);
      // Optimizer steps (every Adam of the model at the cosine step size), then due refreshes.
      m.l1->set_lr(lr, s);
      m.l2->set_lr(lr, s);
      m.adam_wh->set_lr(lr, s);
      m.adam_bh->set_lr(lr, s);
      if (o.tans) {
        const std::pair<sc::SparseLinear24*, sc::TansCompressed<float>*> lt[2] = {
            {m.l1.get(), tans1.get()}, {m.l2.get(), tans2.get()}};
        for (const auto& p : lt) {
          p.second->set_lr(lr);
          p.second->step(p.first->values_data(), p.first->grad_data(), p.first->indices_data(),
                         blas, s);
          p.first->step_bias(s);
          p.first->pack(s);
        }
      } else {
        m.l1->step(s);
        m.l2->step(s);
      }
      m.adam_wh->step(m.wh.data(), m.dwh.data(), nullptr, s);
      m.adam_bh->step(m.bh.data(), m.dbh.data(), nullptr, s);
      ++step;
      seen += Index(y.size());
      if (topo1.due(step)) {
        sparsenm::Stopwatch rclock;
        const sparsenm::RefreshResult r1 =
            o.cpu_refresh ? m.l1->refresh(topo1, step, s) : dev1.refresh(*m.l1, step, s);
        const sparsenm::RefreshResult r2 =
            o.cpu_refresh ? m.l2->refresh(topo2, step, s) : dev2.refresh(*m.l2, step, s);
        if (o.tans) tans1->remap(r1.slots, s), tans2->remap(r2.slots, s);
        refresh_s += rclock.seconds();
        res.refreshes += 2;
      }
    }
    std::vector<double> acc(2);
    m.acc.download(acc.data(), 2, s);
    const double secs = clock.seconds();
    res.train_seconds += secs;
    res.refresh_seconds += refresh_s;
    res.epoch_test.push_back(evaluate(m, data.test, hx, hy, s));
    std::printf(
        "seed %llu epoch %d/%d: loss %.4f train acc %.2f%% test %.2f%%  (%.2f s, %.0f samples/s; "
        "refreshes %.2f s)\n",
        (unsigned long long)seed, epoch + 1, o.epochs, acc[0] / double(seen),
        100.0 * acc[1] / double(seen), res.epoch_test.back(), secs, double(seen) / secs, refresh_s);
    std::fflush(stdout);
  }
  res.steps = step;
  // The trained layers are still legal transposable 2:4 (a check of the refresh route).
  for (auto* l : {m.l1.get(), m.l2.get()}) {
    const auto w = l->download(s);
    SPARSENM_CHECK(sparsenm::is_transposable_legal(sparsenm::mask_of(w), NM{2, 4}),
                   "fashion_mnist_gpu: a trained mask is not transposable 2:4");
  }
  return res;
}

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (sc::device_count() == 0) {
      std::fprintf(stderr, "fashion_mnist_gpu: no CUDA device\n");
      return 77;
    }
    cudaDeviceProp prop{};
    SPARSENM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    sparsenm::Stopwatch total;
    Data data;
    data.train = sparsenm::load_idx_dataset(o.data + "/train-images-idx3-ubyte.gz",
                                            o.data + "/train-labels-idx1-ubyte.gz", o.train_limit);
    data.test = sparsenm::load_idx_dataset(o.data + "/t10k-images-idx3-ubyte.gz",
                                           o.data + "/t10k-labels-idx1-ubyte.gz");
    std::printf(
        "Fashion-MNIST on %s: %lld train / %lld test images; MLP 784-1024-1024-10, CHTs24 2:4 "
        "transposable (cuda::SparseLinear24), %s, refresh %s, %d epoch(s), batch %d, lr %g\n",
        prop.name, (long long)data.train.images.rows(), (long long)data.test.images.rows(),
        o.tans ? "TANS (cuda::TansCompressed)" : "Adam", o.cpu_refresh ? "CPU engine" : "device",
        o.epochs, o.tans && o.tans_batch > 0 ? o.tans_batch : o.batch, o.lr);
    sc::Stream stream;
    std::vector<double> finals;
    for (int k = 0; k < o.seeds; ++k) {
      const RunResult r = run(o, data, o.seed + std::uint64_t(k), stream);
      finals.push_back(r.epoch_test.back());
      std::printf(
          "RESULT seed=%llu test_accuracy=%.2f train_s=%.2f refresh_s=%.2f steps=%ld "
          "refreshes=%ld us_per_step_excl_refresh=%.1f\n",
          (unsigned long long)(o.seed + std::uint64_t(k)), r.epoch_test.back(), r.train_seconds,
          r.refresh_seconds, r.steps, r.refreshes,
          1e6 * (r.train_seconds - r.refresh_seconds) / double(r.steps));
    }
    double mean = 0, var = 0;
    for (double a : finals) mean += a / double(finals.size());
    for (double a : finals) var += (a - mean) * (a - mean);
    const double sd = finals.size() > 1 ? std::sqrt(var / double(finals.size() - 1)) : 0.0;
    std::printf("chts24 2:4 (%s) on the GPU: test accuracy %.2f +- %.2f %% over %zu seed(s)\n",
                o.tans ? "tans" : "adam", mean, sd, finals.size());
    std::printf("total wall time %.1f s (data loading included)\n", total.seconds());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_gpu: %s\n", e.what());
    return 1;
  }
}

#endif  // SPARSENM_HAS_CUSPARSELT
