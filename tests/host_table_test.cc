#include "host_table.h"

#include <random>
#include <unordered_map>

#include "gtest/gtest.h"

namespace ringfence::internal {
namespace {

// Inserts and finds random keys against a reference map, across growth.
TEST(HostTableTest, MatchesAReferenceMapAcrossGrowth) {
  HostTable table;
  std::unordered_map<uint64_t, uint32_t> reference;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50000; ++i) {
    uint64_t key = rng() | 1;  // never 0
    if (i % 5 == 0 && !reference.empty()) {
      key = reference.begin()->first;  // re-touch an existing key
    }
    absl::MutexLock lock(&table.ShardMutex(HostTable::ShardOf(key)));
    bool inserted = false;
    HostState* s = table.FindOrInsert(key, &inserted);
    EXPECT_EQ(inserted, reference.count(key) == 0);
    s->last_seen = static_cast<uint32_t>(i);
    reference[key] = static_cast<uint32_t>(i);
  }
  EXPECT_EQ(table.size(), reference.size());
  for (const auto& [key, value] : reference) {
    absl::MutexLock lock(&table.ShardMutex(HostTable::ShardOf(key)));
    const HostState* s = table.Find(key);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->last_seen, value);
  }
  absl::MutexLock lock(&table.ShardMutex(0));
  EXPECT_EQ(table.Find(0x0000000000000002ULL), nullptr);
}

TEST(HostTableTest, ForEachVisitsEveryHostOnce) {
  HostTable table;
  for (uint64_t k = 1; k <= 1000; ++k) {
    const uint64_t key = k * 0x9e3779b97f4a7c15ULL;
    absl::MutexLock lock(&table.ShardMutex(HostTable::ShardOf(key)));
    bool inserted;
    table.FindOrInsert(key, &inserted);
  }
  int visited = 0;
  for (int s = 0; s < HostTable::kShards; ++s) {
    absl::MutexLock lock(&table.ShardMutex(s));
    table.ForEach(s, [&](uint64_t, HostState*) { ++visited; });
  }
  EXPECT_EQ(visited, 1000);
}

TEST(HostTableTest, ReserveAvoidsGrowth) {
  HostTable table;
  table.Reserve(100000);
  const size_t reserved = table.MemoryBytes();
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t key = rng() | 1;
    absl::MutexLock lock(&table.ShardMutex(HostTable::ShardOf(key)));
    bool inserted;
    table.FindOrInsert(key, &inserted);
  }
  EXPECT_EQ(table.MemoryBytes(), reserved);
  EXPECT_LE(static_cast<double>(reserved) / 100000, 32.0);
}

}  // namespace
}  // namespace ringfence::internal
