// parallel_for / parallel_for_chunks visit every index exactly once, for 1 and 2 threads.
#include <gtest/gtest.h>

#include <vector>

#include <sparsenm/core/parallel.hpp>
#include <sparsenm/core/simd.hpp>

using namespace sparsenm;

TEST(Parallel, EveryIndexOnce) {
  for (int threads : {1, 2}) {
    set_thread_count(threads);
    std::vector<int> hits(1001, 0);
    parallel_for(0, 1001, [&](Index i) { hits[i] += 1; });
    for (int h : hits) ASSERT_EQ(h, 1);
    std::vector<int> chunk_hits(1001, 0);
    parallel_for_chunks(1001, 64, [&](Index b, Index e) {
      EXPECT_EQ(b % 64, 0);
      EXPECT_LE(e - b, 64);
      for (Index i = b; i < e; ++i) chunk_hits[i] += 1;
    });
    for (int h : chunk_hits) ASSERT_EQ(h, 1);
  }
  set_thread_count(2);
  EXPECT_GE(thread_count(), 1);
  EXPECT_FALSE(in_parallel());
}

TEST(Simd, CompiledIsaIsSupportedAtRuntime) {
  // A binary compiled for an ISA the CPU lacks would crash on its first vector instruction.
  EXPECT_LE(static_cast<int>(compiled_isa()), static_cast<int>(runtime_isa()));
  EXPECT_NE(std::string(to_string(compiled_isa())), "");
}
