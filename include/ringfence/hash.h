// Stable hashing for host bucketing and host keys.
//
// The bucket a host falls in must be the same in every process, on every
// machine and in every version of ringfence, and must be reproducible from
// other languages (agents, dashboards). absl::Hash and std::hash are neither,
// so ringfence uses MurmurHash64A (Austin Appleby, public domain, widely
// ported), specified here completely:
//
//   MurmurHash64A(data, len, seed):
//     m = 0xc6a4a7935bd1e995, r = 47
//     h = seed ^ (len * m)                      (all arithmetic mod 2^64)
//     for each 8-byte little-endian word k of data:
//       k *= m; k ^= k >> r; k *= m; h ^= k; h *= m
//     tail (len % 8 remaining bytes b[0..n-1]): for i = n-1 down to 0:
//       h ^= b[i] << (8 * i); then (if n > 0) h *= m
//     h ^= h >> r; h *= m; h ^= h >> r
//
//   HostKey(host_id)          = MurmurHash64A(host_id, seed 0)
//   BucketHash(salt, host_id) = MurmurHash64A(host_id,
//                                             seed MurmurHash64A(salt, seed 0))
//   Bucket(salt, host_id)     = BucketHash(salt, host_id) mod 1,000,000
//
// A stage with `percent` P contains a host iff Bucket < round(P * 10,000), so
// percentages have a resolution of 0.0001 % and growing P only ever adds
// hosts. Test vectors are in tests/hash_test.cc.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ringfence {

// Number of buckets a rollout's population is divided into.
inline constexpr uint32_t kNumBuckets = 1000000;

// MurmurHash64A
//
// Austin Appleby's 64-bit MurmurHash2 variant (see the file comment).
uint64_t MurmurHash64A(absl::string_view data, uint64_t seed);

// HostKey
//
// The 64-bit key identifying a host in telemetry tables. Never 0.
uint64_t HostKey(absl::string_view host_id);

// SaltSeed
//
// The seed a rollout's salt contributes to BucketOf; compute once per rollout.
inline uint64_t SaltSeed(absl::string_view salt) {
  return MurmurHash64A(salt, 0);
}

// BucketOf
//
// The stable bucket in [0, kNumBuckets) of `host_id` under the rollout whose
// salt seed is `salt_seed`.
inline uint32_t BucketOf(uint64_t salt_seed, absl::string_view host_id) {
  return static_cast<uint32_t>(MurmurHash64A(host_id, salt_seed) % kNumBuckets);
}

// PercentToBucketLimit
//
// The exclusive bucket limit of a cumulative percent: round(P * 10,000).
uint32_t PercentToBucketLimit(double percent);

}  // namespace ringfence
