// HostTable: the compact per-host table behind RolloutTracker.
//
// Open addressing with linear probing over 24-byte slots (64-bit host key +
// 16 bytes of state), split into kShards shards with a mutex each so
// assignment grants and ingest batches on different shards do not contend.
// A shard grows by 1.5x when its load would pass 0.85, so the table costs
// 24 / load bytes per host: 28 at the top of the range, 42 just after growth.
// Reserve() sizes every shard for a known fleet up front (with headroom for
// the shards' binomial spread).
//
// Thread safety: callers lock a shard (ShardMutex) around every access to it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ringfence::internal {

// Per-host state. Times are seconds since the tracker's epoch; 0 = never.
struct HostState {
  // The last sign of life: for a control host any event; for an exposed
  // host only telemetry showing it alive on the release (`applied`, a
  // heartbeat running it), starting at its exposure.
  uint32_t last_seen = 0;
  uint32_t exposed_at = 0;  // 0 = control
  // In control: when it was first seen. Exposed: when it began loading the
  // release, in its own clock (the time of its first telemetry about the
  // release; 0 until that arrives).
  uint32_t first_seen = 0;
  uint8_t affected = 0;  // bit per signal index: showed it in its arm
  uint8_t flags = 0;     // HostFlags, and the attempt count (kAttemptsMask)
  uint8_t stage = 0;     // cohort (stage at exposure)
  // Bit per signal index: showed it while in control, before its exposure.
  // Such a host is not at risk of that signal in treatment (it counts
  // neither for nor against the release).
  uint8_t pre_affected = 0;
};
static_assert(sizeof(HostState) == 16, "HostState must stay 16 bytes");

enum HostFlags : uint8_t {
  kApplied = 1,  // reported `applied` (or a heartbeat running the release)
  kHealthy = 2,  // counted healthy for pacing
  kUp = 4,       // came up on the release: applied, then alive on it
  kGranted = 8,  // exposed by an assignment grant of a paced stage
  kAttemptsShift = 4,
  kAttemptsMask = 0x70,  // check-ins/boots/applyings before kUp, 0..7
  kDirty = 0x80,         // evidence changed since the last checkpoint
};

struct Slot {
  uint64_t key = 0;  // 0 = empty
  HostState state;
};
static_assert(sizeof(Slot) == 24, "Slot must stay 24 bytes");

class HostTable {
 public:
  static constexpr int kShardBits = 6;
  static constexpr int kShards = 1 << kShardBits;

  HostTable();

  // Sizes every shard to hold its share of `hosts` without growing.
  void Reserve(uint64_t hosts);

  static int ShardOf(uint64_t key) {
    return static_cast<int>(key >> (64 - kShardBits));
  }
  absl::Mutex& ShardMutex(int shard) const { return shards_[shard].mu; }

  // Find
  //
  // Returns the state of `key` or nullptr. REQUIRES: shard lock held.
  HostState* Find(uint64_t key);
  const HostState* Find(uint64_t key) const;

  // FindOrInsert
  //
  // Returns the state of `key`, inserting a zeroed one (and setting
  // `*inserted`) if absent. Pointers stay valid until the next insert into
  // the same shard. REQUIRES: shard lock held.
  HostState* FindOrInsert(uint64_t key, bool* inserted);

  // Prefetch
  //
  // Hints the cache to load the first slot `key` probes. REQUIRES: shard
  // lock held.
  void Prefetch(uint64_t key) const {
    const Shard& shard = shards_[ShardOf(key)];
    const char* p = reinterpret_cast<const char*>(
        shard.slots.data() + IndexOf(key, shard.slots.size()));
    // A 24-byte slot can straddle two cache lines.
    __builtin_prefetch(p);
    __builtin_prefetch(p + sizeof(Slot) - 1);
  }

  // ForEach
  //
  // Calls f(key, HostState*) for every host of `shard`. REQUIRES: shard lock.
  template <typename F>
  void ForEach(int shard, F f) {
    for (Slot& s : shards_[shard].slots) {
      if (s.key != 0) f(s.key, &s.state);
    }
  }

  uint64_t size() const;
  size_t MemoryBytes() const;

 private:
  struct Shard {
    mutable absl::Mutex mu;
    std::vector<Slot> slots;  // capacity is slots.size()
    uint64_t size = 0;
  };

  static size_t IndexOf(uint64_t key, size_t capacity) {
    // Fast range reduction on the low bits (the high bits chose the shard).
    return static_cast<size_t>(
        (static_cast<unsigned __int128>(key << kShardBits) * capacity) >> 64);
  }
  static void Rehash(Shard& shard, size_t capacity);

  std::unique_ptr<Shard[]> shards_;
};

}  // namespace ringfence::internal
