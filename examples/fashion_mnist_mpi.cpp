// SPDX-License-Identifier: Apache-2.0
// Data-parallel Fashion-MNIST training over MPI (sparsenm/mpi.hpp): the example's MLP
// 784 -> 1024 -> 1024 -> 10, dense or CHTs24 1:4 / 2:4 (transposable SparseLinear + Adam +
// CHTs24 refresh, sparse-to-sparse), every rank training on its shard of each global batch:
//
//   mpiexec -n 2 build/examples/fashion_mnist_mpi --method chts24 --nm 1:4 --epochs 1
//   mpiexec -n 2 --hostfile hosts build/examples/fashion_mnist_mpi ...   (several machines)
//
// The global batch, learning rate and data order are the same for any number of ranks (the
// epoch's permutation comes from the seed; rank r takes rows [r B/K, (r+1) B/K) of every batch), so
// K ranks train the model one process trains, up to the rounding of the gradient sums (bit for bit
// against one process that accumulates the K shards in rank order: tests/mpi). Rank 0 prints
// samples/s, the bytes each rank sends per step, and the test accuracy; --threads sets OpenMP
// threads per rank (default 1: one rank per core).
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <sparsenm/mpi.hpp>
#include <sparsenm/sparsenm.hpp>
#include <sparsenm/train/batching.hpp>
#include <sparsenm/train/dense_linear.hpp>
#include <sparsenm/train/idx.hpp>
#include <sparsenm/train/loss.hpp>

using namespace sparsenm;

namespace {

struct Options {
  std::string method = "chts24", data = "/usr/share/datasets/fashion-mnist";
  NM nm{1, 4};
  int epochs = 1, threads = 1;
  Index balance = 0;          // granularity of balanced shares; 0: equal shares
  bool shared_memory = true;  // Ordered reduction through the shared window on one node
  Index batch = 128, train_limit = 0;
  double lr = 1e-3;
  std::uint64_t seed = 1;
};

[[noreturn]] void usage(int rank) {
  if (rank == 0)
    std::fprintf(stderr,
                 "usage: mpiexec -n K fashion_mnist_mpi [--method dense|chts24] [--nm 1:4|2:4]\n"
                 "       [--epochs E] [--batch GLOBAL_B] [--lr LR] [--seed S] [--threads T]\n"
                 "       [--data DIR] [--train-limit N] [--balance GRANULARITY]\n"
                 "       [--shared-memory 1|0]\n");
  MPI_Finalize();
  std::exit(2);
}

Options parse(int argc, char** argv, int rank) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(rank);
    const std::string v = argv[++i];
    if (a == "--method" && (v == "dense" || v == "chts24"))
      o.method = v;
    else if (a == "--nm" && (v == "1:4" || v == "2:4"))
      o.nm = {v[0] - '0', 4};
    else if (a == "--epochs")
      o.epochs = std::atoi(v.c_str());
    else if (a == "--batch")
      o.batch = std::atol(v.c_str());
    else if (a == "--lr")
      o.lr = std::atof(v.c_str());
    else if (a == "--seed")
      o.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--data")
      o.data = v;
    else if (a == "--train-limit")
      o.train_limit = std::atol(v.c_str());
    else if (a == "--balance")
      o.balance = std::atol(v.c_str());
    else if (a == "--shared-memory" && (v == "0" || v == "1"))
      o.shared_memory = v == "1";
    else
      usage(rank);
  }
  if (o.epochs < 1 || o.batch < 1 || o.threads < 1 || !(o.lr > 0) || o.balance < 0) usage(rank);
  return o;
}

// One hidden layer: dense (DenseLinear) or sparse-to-sparse (SparseLinear).
struct Hidden {
  std::unique_ptr<DenseLinear<float>> dense;
  std::unique_ptr<SparseLinear<float>> sparse;
  Matrix<float> h;  // ReLU output
  const Matrix<float>& forward(const Matrix<float>& x) {
    h = (dense ? dense->forward(x) : sparse->forward(x)).cwiseMax(0.0f);
    return h;
  }
  Matrix<float> backward(const Matrix<float>& dh_relu) {
    const Matrix<float> dz = dh_relu.cwiseProduct((h.array() > 0.0f).cast<float>().matrix());
    return dense ? dense->backward(dz) : sparse->backward(dz);
  }
  // The first layer: its input (the images) needs no gradient.
  void backward_params(const Matrix<float>& dh_relu) {
    const Matrix<float> dz = dh_relu.cwiseProduct((h.array() > 0.0f).cast<float>().matrix());
    if (dense)
      dense->backward_params(dz);
    else
      sparse->backward_params(dz);
  }
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const Options o = parse(argc, argv, rank);
  set_thread_count(o.threads);
  try {
    const IdxDataset train =
        load_idx_dataset(o.data + "/train-images-idx3-ubyte.gz",
                         o.data + "/train-labels-idx1-ubyte.gz", o.train_limit);
    const IdxDataset test = load_idx_dataset(o.data + "/t10k-images-idx3-ubyte.gz",
                                             o.data + "/t10k-labels-idx1-ubyte.gz", 0);
    shard_of(o.batch, 0, ranks);  // throws unless K divides the batch
    const Philox rng(o.seed);
    const bool sparse = o.method != "dense";
    const std::vector<Index> widths = {784, 1024, 1024};
    const long steps_per_epoch = long(train.images.rows() / o.batch);  // full global batches only
    const long steps = steps_per_epoch * o.epochs;

    SparseTrainerConfig cfg;
    cfg.adam.lr = o.lr;
    cfg.refresh = sparse;
    cfg.topology.nm = o.nm;
    cfg.topology.layout = Layout::Transposable;  // CHTs24 (transposable 4x4 blocks)
    cfg.topology.interval = 100;
    cfg.topology.total_steps = steps;
    cfg.seed = o.seed;
    SparseTrainer<float> trainer(cfg);
    std::vector<Hidden> hidden(2);
    for (std::size_t l = 0; l < hidden.size(); ++l) {
      if (sparse) {
        hidden[l].sparse = std::make_unique<SparseLinear<float>>(
            widths[l], widths[l + 1], o.nm, Layout::Transposable, rng.split(l), true);
        trainer.add(*hidden[l].sparse);
      } else {
        hidden[l].dense =
            std::make_unique<DenseLinear<float>>(widths[l], widths[l + 1], rng.split(l));
        trainer.add(hidden[l].dense->weight(), hidden[l].dense->grad_weight());
        trainer.add(hidden[l].dense->bias(), hidden[l].dense->grad_bias());
      }
    }
    DenseLinear<float> head(1024, 10, rng.split(9));
    trainer.add(head.weight(), head.grad_weight());
    trainer.add(head.bias(), head.grad_bias());
    MpiConfig dp_cfg;
    dp_cfg.balance = o.balance > 0;  // shares follow the ranks' speeds (MpiConfig::balance)
    if (o.balance > 0) dp_cfg.balance_granularity = o.balance;
    dp_cfg.shared_memory = o.shared_memory;  // 0: the all-gather route (as across machines)
    MpiDataParallel<float> dp(MPI_COMM_WORLD, dp_cfg);

    BatchSampler sampler(train.images.rows(), o.batch, rng.split(20));
    Matrix<float> xb, x, dlogits;
    std::vector<int> yb, y;
    double train_seconds = 0, comm_seconds = 0;
    long step = 0;
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
      sampler.begin(std::uint64_t(epoch));
      for (long b = 0; b < steps_per_epoch; ++b) {
        sampler.next(train.images, train.labels, xb, yb);  // the global batch, same on every rank
        const auto t0 = std::chrono::steady_clock::now();
        const Shard mine = dp.shard(o.batch);  // equal slices unless --balance
        x = xb.middleRows(mine.begin, mine.count);
        y.assign(yb.begin() + mine.begin, yb.begin() + mine.begin + mine.count);
        const Matrix<float>& h1 = hidden[0].forward(x);
        const Matrix<float>& h2 = hidden[1].forward(h1);
        const Matrix<float> logits = head.forward(h2);
        softmax_cross_entropy(logits, y, &dlogits);  // mean over this rank's shard
        hidden[0].backward_params(hidden[1].backward(head.backward(dlogits)));
        const auto t1 = std::chrono::steady_clock::now();
        dp.all_reduce_gradients(trainer);
        const auto t2 = std::chrono::steady_clock::now();
        const std::vector<RefreshResult>& refreshed = trainer.step(++step);
        if (!refreshed.empty()) dp.check_agreement(trainer);  // masks agree, no mask traffic
        train_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        comm_seconds += std::chrono::duration<double>(t2 - t1).count();
      }
    }
    // Test accuracy (every rank holds the same model; rank 0 reports).
    Index correct = 0;
    for (Index b0 = 0; b0 < test.images.rows(); b0 += 1000) {
      const Index n = std::min<Index>(1000, test.images.rows() - b0);
      const std::vector<int> labels(test.labels.begin() + b0, test.labels.begin() + b0 + n);
      const Matrix<float> xt = test.images.middleRows(b0, n);
      const Matrix<float>& a1 = hidden[0].forward(xt);
      const Matrix<float>& a2 = hidden[1].forward(a1);
      correct += count_correct(head.forward(a2), labels);
    }
    double slowest = 0;  // the step rate is the slowest rank's
    MPI_Allreduce(&train_seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    // Each rank's own work (training time less its all-reduce, which includes waiting for the
    // others): how evenly the cores kept pace.
    const double own = train_seconds - comm_seconds;
    std::vector<double> owns(std::size_t(ranks), 0.0);
    MPI_Gather(&own, 1, MPI_DOUBLE, owns.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      std::printf(
          "%s%s, %d rank(s) x %d thread(s), global batch %ld (%ld per rank%s), %ld steps\n"
          "  training %.1f s, %.0f samples/s; all-reduce %.2f s on rank 0 (%.1f%%, %s)\n"
          "  gradient payload per step %.2f MB, sent per rank per step %.2f MB\n"
          "  test accuracy %.2f%%, training state %.1f MB per rank\n",
          o.method.c_str(), sparse ? (" " + std::to_string(o.nm.n) + ":4").c_str() : "", ranks,
          o.threads, long(o.batch), long(o.batch / ranks),
          o.balance > 0 && ranks > 1 ? " on average, balanced" : "", step, slowest,
          double(step) * double(o.batch) / slowest, comm_seconds,
          100.0 * comm_seconds / train_seconds,
          ranks == 1                ? "none"
          : dp.uses_shared_memory() ? "shared window"
                                    : "all-gather",
          double(dp.payload_bytes()) / 1e6, double(dp.sent_bytes()) / 1e6,
          100.0 * double(correct) / double(test.images.rows()),
          double(trainer.state_bytes()) / 1e6);
      if (ranks > 1) {
        std::printf("  compute per rank (s):");
        for (const double t : owns) std::printf(" %.2f", t);
        if (!dp.shares().empty()) {
          std::printf("; balanced shares at the end:");
          for (const Index n : dp.shares()) std::printf(" %ld", long(n));
        }
        std::printf("\n");
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
