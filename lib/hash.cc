#include "ringfence/hash.h"

#include <cmath>
#include <cstring>

namespace ringfence {

uint64_t MurmurHash64A(absl::string_view data, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  const size_t len = data.size();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
  uint64_t h = seed ^ (static_cast<uint64_t>(len) * m);

  const size_t words = len / 8;
  for (size_t i = 0; i < words; ++i) {
    uint64_t k;
    std::memcpy(&k, p + i * 8, sizeof k);  // words are little-endian
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    k = __builtin_bswap64(k);
#endif
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const unsigned char* tail = p + words * 8;
  switch (len & 7) {
    case 7:
      h ^= static_cast<uint64_t>(tail[6]) << 48;
      [[fallthrough]];
    case 6:
      h ^= static_cast<uint64_t>(tail[5]) << 40;
      [[fallthrough]];
    case 5:
      h ^= static_cast<uint64_t>(tail[4]) << 32;
      [[fallthrough]];
    case 4:
      h ^= static_cast<uint64_t>(tail[3]) << 24;
      [[fallthrough]];
    case 3:
      h ^= static_cast<uint64_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint64_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= static_cast<uint64_t>(tail[0]);
      h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

uint64_t HostKey(absl::string_view host_id) {
  const uint64_t k = MurmurHash64A(host_id, 0);
  return k == 0 ? 1 : k;  // 0 marks an empty slot in host tables
}

uint32_t PercentToBucketLimit(double percent) {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return kNumBuckets;
  return static_cast<uint32_t>(std::llround(percent * (kNumBuckets / 100.0)));
}

}  // namespace ringfence
