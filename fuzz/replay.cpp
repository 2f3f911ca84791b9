// SPDX-License-Identifier: Apache-2.0
// Runs the fuzz harnesses (harness.hpp) without libFuzzer, for the suite (ctest io_fuzz_replay):
//   fuzz_replay DIR...
// Every file of every DIR goes through every harness (a .npy file through the safetensors harness
// is one more input that must be rejected cleanly; a directory named "checkpoint" goes through the
// checkpoint harness only, and that harness sees nothing else), then every prefix of it (each
// truncation) and every single-byte mutation from a small fixed set, so the suite probes the
// neighbourhood of each seed and not only the seed. Deterministic, well under a second for the
// tracked corpus. Exits non-zero if a directory holds no file or a harness lets an exception other
// than sparsenm::Error escape; a broken invariant aborts.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "checkpoint_harness.hpp"
#include "harness.hpp"

namespace {

// The input being run, named on stderr if a harness aborts (a broken invariant or a sanitizer).
std::string current;

extern "C" void name_input_on_abort(int) {
  const char prefix[] = "fuzz_replay: aborted on ";
  (void)!::write(2, prefix, sizeof(prefix) - 1);
  (void)!::write(2, current.data(), current.size());
  (void)!::write(2, "\n", 1);
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

using Harness = int (*)(const std::uint8_t*, std::size_t);

struct Target {
  const char* name;
  Harness run;
  // Past a safetensors header, mutate only every data_stride-th byte: for the checkpoint harness a
  // mutated tensor value restores successfully and then trains, about 100x the cost of a rejected
  // input; the header (names, shapes, offsets: where restore's checks are) is mutated in full.
  std::size_t data_stride;
};

const Target kTargets[] = {{"npy", sparsenm_fuzz::fuzz_npy_one, 1},
                           {"safetensors", sparsenm_fuzz::fuzz_safetensors_one, 1},
                           {"checkpoint", sparsenm_fuzz::fuzz_checkpoint_one, 32}};

// End of a safetensors header (8-byte length + JSON) if the input has one, else 0.
std::size_t header_end(const std::vector<std::uint8_t>& b) {
  if (b.size() < 8) return 0;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[std::size_t(i)];
  return n <= b.size() - 8 ? std::size_t(8 + n) : 0;
}

std::vector<std::uint8_t> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Byte values tried at every position: the extremes, a digit, JSON / Python-dict punctuation, and
// flips of the lowest and highest bit.
std::vector<std::uint8_t> mutations_of(std::uint8_t b) {
  return {0x00,
          0xff,
          '9',
          '"',
          '\'',
          ',',
          ']',
          ')',
          '}',
          std::uint8_t(b ^ 0x01),
          std::uint8_t(b ^ 0x80)};
}

// fuzz_replay --write-checkpoint-seeds DIR: writes the checkpoint corpus (fuzz/corpus/checkpoint),
// one file per weight optimizer and layout, each after a few steps and two refreshes.
int write_checkpoint_seeds(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s --write-checkpoint-seeds DIR\n", argv[0]);
    return 2;
  }
  for (const char* opt : {"adam", "tans", "muon"})
    for (const sparsenm::Layout layout :
         {sparsenm::Layout::RowWise, sparsenm::Layout::Transposable}) {
      sparsenm_fuzz::CheckpointModel model(sparsenm_fuzz::optimizer_named(opt), layout);
      model.train(1, 5);
      model.trainer.save(std::string(argv[2]) + "/" + opt + "_" + sparsenm::to_string(layout) +
                         ".safetensors");
    }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
    return 2;
  }
  if (std::string(argv[1]) == "--write-checkpoint-seeds") return write_checkpoint_seeds(argc, argv);
  std::signal(SIGABRT, name_input_on_abort);
  std::size_t files = 0, runs = 0;
  try {
    for (int a = 1; a < argc; ++a) {
      std::vector<std::filesystem::path> paths;
      for (const auto& e : std::filesystem::directory_iterator(argv[a]))
        if (e.is_regular_file()) paths.push_back(e.path());
      std::sort(paths.begin(), paths.end());
      if (paths.empty()) {
        std::fprintf(stderr, "fuzz_replay: no corpus file in '%s'\n", argv[a]);
        return 1;
      }
      for (const auto& p : paths) {
        ++files;
        const std::vector<std::uint8_t> bytes = read_all(p);
        // The checkpoint corpus goes through the checkpoint harness only (its files are ordinary
        // safetensors files for the other two, each mutation a full file round trip: 2 minutes),
        // and the checkpoint harness sees only that corpus (other inputs stop at its format check).
        const bool checkpoint_dir = p.parent_path().filename() == "checkpoint";
        for (const Target& t : kTargets) {
          if (checkpoint_dir != (std::string(t.name) == "checkpoint")) continue;
          current = std::string(t.name) + " harness, " + p.string();
          t.run(bytes.data(), bytes.size());
          ++runs;
          for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
            current =
                std::string(t.name) + " harness, " + p.string() + " cut at " + std::to_string(cut);
            // A copy of exactly `cut` bytes, so ASan sees any read past the end.
            const std::vector<std::uint8_t> prefix(bytes.begin(), bytes.begin() + cut);
            t.run(prefix.data(), prefix.size());
            ++runs;
          }
          std::vector<std::uint8_t> m = bytes;
          const std::size_t data_begin = header_end(bytes);
          for (std::size_t i = 0; i < m.size(); ++i) {
            if (data_begin > 0 && i >= data_begin && (i - data_begin) % t.data_stride != 0)
              continue;
            const std::uint8_t orig = m[i];
            for (const std::uint8_t v : mutations_of(orig)) {
              if (v == orig) continue;
              current = std::string(t.name) + " harness, " + p.string() + " byte " +
                        std::to_string(i) + " = " + std::to_string(v);
              m[i] = v;
              t.run(m.data(), m.size());
              ++runs;
            }
            m[i] = orig;
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_replay: %s: escaped exception: %s\n", current.c_str(), e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "fuzz_replay: %s: escaped a non-std exception\n", current.c_str());
    return 1;
  }
  std::printf("fuzz_replay: %zu corpus files, %zu harness runs, no failure\n", files, runs);
  return 0;
}
