#include "host_table.h"

#include <algorithm>
#include <cmath>

namespace ringfence::internal {
namespace {

constexpr size_t kInitialCapacity = 64;
constexpr double kMaxLoad = 0.85;

}  // namespace

HostTable::HostTable() : shards_(new Shard[kShards]) {
  for (int i = 0; i < kShards; ++i) {
    shards_[i].slots.assign(kInitialCapacity, Slot{});
  }
}

void HostTable::Reserve(uint64_t hosts) {
  // Hosts spread over shards binomially: leave four standard deviations of
  // headroom so no shard has to grow.
  const double mean = static_cast<double>(hosts) / kShards;
  const size_t per_shard =
      static_cast<size_t>((mean + 4 * std::sqrt(mean) + 16) / kMaxLoad) + 1;
  for (int i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    if (shards_[i].slots.size() < per_shard) Rehash(shards_[i], per_shard);
  }
}

HostState* HostTable::Find(uint64_t key) {
  return const_cast<HostState*>(static_cast<const HostTable*>(this)->Find(key));
}

const HostState* HostTable::Find(uint64_t key) const {
  const Shard& shard = shards_[ShardOf(key)];
  const size_t cap = shard.slots.size();
  size_t i = IndexOf(key, cap);
  while (true) {
    const Slot& s = shard.slots[i];
    if (s.key == key) return &s.state;
    if (s.key == 0) return nullptr;
    if (++i == cap) i = 0;
  }
}

HostState* HostTable::FindOrInsert(uint64_t key, bool* inserted) {
  Shard& shard = shards_[ShardOf(key)];
  *inserted = false;
  if (static_cast<double>(shard.size + 1) >
      kMaxLoad * static_cast<double>(shard.slots.size())) {
    Rehash(shard, shard.slots.size() + shard.slots.size() / 2);
  }
  const size_t cap = shard.slots.size();
  size_t i = IndexOf(key, cap);
  while (true) {
    Slot& s = shard.slots[i];
    if (s.key == key) return &s.state;
    if (s.key == 0) {
      s.key = key;
      s.state = HostState{};
      ++shard.size;
      *inserted = true;
      return &s.state;
    }
    if (++i == cap) i = 0;
  }
}

void HostTable::Rehash(Shard& shard, size_t capacity) {
  std::vector<Slot> old;
  old.swap(shard.slots);
  shard.slots.assign(capacity, Slot{});
  for (const Slot& s : old) {
    if (s.key == 0) continue;
    size_t i = IndexOf(s.key, capacity);
    while (shard.slots[i].key != 0) {
      if (++i == capacity) i = 0;
    }
    shard.slots[i] = s;
  }
}

uint64_t HostTable::size() const {
  uint64_t n = 0;
  for (int i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    n += shards_[i].size;
  }
  return n;
}

size_t HostTable::MemoryBytes() const {
  size_t bytes = sizeof(*this) + kShards * sizeof(Shard);
  for (int i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    bytes += shards_[i].slots.capacity() * sizeof(Slot);
  }
  return bytes;
}

}  // namespace ringfence::internal
