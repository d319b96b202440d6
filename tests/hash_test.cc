#include "ringfence/hash.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringfence {
namespace {

using ::testing::AllOf;
using ::testing::Ge;
using ::testing::Le;
using ::testing::Lt;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string HostName(int i) { return absl::StrFormat("host-%06d", i); }

// ---- MurmurHash64A test vectors --------------------------------------------
//
// The expected values were NOT produced by lib/hash.cc: they come from an
// independent Python 3 implementation of the specification in
// include/ringfence/hash.h (arithmetic masked to 64 bits),
// tests/testdata/murmur64a.py; `python3 tests/testdata/murmur64a.py` prints
// this table.

struct Vector {
  std::string data;
  uint64_t seed;
  uint64_t hash;
};

void PrintTo(const Vector& v, std::ostream* os) {
  *os << "\"" << absl::CHexEscape(v.data) << "\" seed "
      << absl::StrFormat("0x%016x", v.seed);
}

const Vector kVectors[] = {
    // {input, seed, MurmurHash64A}
    // Every tail length 0..7 with seed 0.
    {std::string("", 0), 0x0000000000000000ULL, 0x0000000000000000ULL},
    {std::string("a", 1), 0x0000000000000000ULL, 0x071717D2D36B6B11ULL},
    {std::string("ab", 2), 0x0000000000000000ULL, 0x62BE85B2FE53D1F8ULL},
    {std::string("abc", 3), 0x0000000000000000ULL, 0x9CC9C33498A95EFBULL},
    {std::string("abcd", 4), 0x0000000000000000ULL, 0xEC1044C45CC5097AULL},
    {std::string("abcde", 5), 0x0000000000000000ULL, 0x1182974836D6DBB7ULL},
    {std::string("abcdef", 6), 0x0000000000000000ULL, 0xB78E3425FC996779ULL},
    {std::string("abcdefg", 7), 0x0000000000000000ULL, 0x241AA52B0A62005DULL},
    // One and several 8-byte words, with and without a tail.
    {std::string("abcdefgh", 8), 0x0000000000000000ULL, 0xAFDB0257FF41AA98ULL},
    {std::string("abcdefghi", 9), 0x0000000000000000ULL, 0xC9B9D84356146AC2ULL},
    {std::string("abcdefghijklmnop", 16), 0x0000000000000000ULL,
     0xD41A085973D213BAULL},
    {std::string("The quick brown fox jumps over the lazy dog", 43),
     0x0000000000000000ULL, 0x5589CA33042A861BULL},
    {std::string("host-000001.example.com", 23), 0x0000000000000000ULL,
     0x3CE83A2307552C42ULL},
    // High bytes (sign extension) in words and in the tail, and a NUL byte.
    {std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8), 0x0000000000000000ULL,
     0x3A8E59C4E2C576DDULL},
    {std::string("\x80\xff\xfe\x7f\x00\x01\x90\xab\xcd\xef\x80", 11),
     0x0000000000000000ULL, 0xE0471080A8E4941CULL},
    // Non-zero seeds, including the top bit.
    {std::string("", 0), 0x0000000000000001ULL, 0xC6A4A7935BD064DCULL},
    {std::string("a", 1), 0x000000009747B28CULL, 0xE96B6245652273AEULL},
    {std::string("abcdefg", 7), 0xDEADBEEFCAFEBABEULL, 0x87DC8C85DB50987BULL},
    {std::string("abcdefgh", 8), 0xFFFFFFFFFFFFFFFFULL, 0x271A7E3CD5778F54ULL},
    {std::string("host-000001.example.com", 23), 0x000000000000002AULL,
     0xB078686AF48B6FFCULL},
};

class MurmurHash64AVectorTest : public ::testing::TestWithParam<Vector> {};

TEST_P(MurmurHash64AVectorTest, MatchesReference) {
  const Vector& v = GetParam();
  EXPECT_EQ(MurmurHash64A(v.data, v.seed), v.hash)
      << absl::StrFormat("got 0x%016X", MurmurHash64A(v.data, v.seed));
}

TEST_P(MurmurHash64AVectorTest, IndependentOfAlignment) {
  const Vector& v = GetParam();
  for (size_t offset = 1; offset < 8; ++offset) {
    std::vector<char> buffer(v.data.size() + offset + 8, '\x5a');
    std::memcpy(buffer.data() + offset, v.data.data(), v.data.size());
    EXPECT_EQ(
        MurmurHash64A(absl::string_view(buffer.data() + offset, v.data.size()),
                      v.seed),
        v.hash)
        << "offset " << offset;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, MurmurHash64AVectorTest,
                         ::testing::ValuesIn(kVectors));

TEST(MurmurHash64ATest, VectorsCoverEveryTailLength) {
  bool tails[8] = {};
  bool multi_word = false;
  bool seeded = false;
  for (const Vector& v : kVectors) {
    tails[v.data.size() % 8] = true;
    multi_word |= v.data.size() >= 16;
    seeded |= v.seed != 0;
  }
  for (int t = 0; t < 8; ++t) EXPECT_TRUE(tails[t]) << "tail length " << t;
  EXPECT_TRUE(multi_word);
  EXPECT_TRUE(seeded);
}

TEST(MurmurHash64ATest, EveryByteMatters) {
  const std::string base = "host-000001.example.com";
  const uint64_t h = MurmurHash64A(base, 0);
  for (size_t i = 0; i < base.size(); ++i) {
    std::string changed = base;
    changed[i] ^= 0x01;
    EXPECT_NE(MurmurHash64A(changed, 0), h) << "byte " << i;
  }
  EXPECT_NE(MurmurHash64A(base, 1), h);
  EXPECT_NE(MurmurHash64A(base + std::string(1, '\0'), 0), h);
}

// ---- SaltSeed / BucketOf / HostKey -----------------------------------------

// Also from tests/testdata/murmur64a.py.
constexpr uint64_t kRolloutSaltSeed = 0xCF67803BF5DA1928ULL;

TEST(BucketOfTest, MatchesReference) {
  EXPECT_EQ(SaltSeed("rollout-salt"), kRolloutSaltSeed);
  EXPECT_EQ(BucketOf(kRolloutSaltSeed, "host-1"), 20260u);
  EXPECT_EQ(BucketOf(kRolloutSaltSeed, "host-2"), 302547u);
  EXPECT_EQ(BucketOf(kRolloutSaltSeed, "db-7.prod"), 662675u);
}

TEST(BucketOfTest, IsMurmurModuloBuckets) {
  const uint64_t seed = SaltSeed("s");
  for (int i = 0; i < 1000; ++i) {
    const std::string host = HostName(i);
    EXPECT_EQ(BucketOf(seed, host), MurmurHash64A(host, seed) % kNumBuckets);
  }
}

TEST(BucketOfTest, InRange) {
  for (absl::string_view salt : {"", "a", "rollout-1", "rollout-2"}) {
    const uint64_t seed = SaltSeed(salt);
    for (int i = 0; i < 20000; ++i) {
      ASSERT_LT(BucketOf(seed, HostName(i)), kNumBuckets) << salt << " " << i;
    }
  }
  EXPECT_LT(BucketOf(0, ""), kNumBuckets);
  EXPECT_LT(BucketOf(~uint64_t{0}, std::string(1000, '\xff')), kNumBuckets);
}

TEST(HostKeyTest, IsMurmurWithSeedZeroAndNeverZero) {
  // MurmurHash64A("", 0) is 0 (see the vectors): the empty id maps to 1.
  ASSERT_EQ(MurmurHash64A("", 0), 0u);
  EXPECT_EQ(HostKey(""), 1u);
  for (const Vector& v : kVectors) {
    if (v.seed != 0 || v.data.empty()) continue;
    EXPECT_EQ(HostKey(v.data), v.hash) << absl::CHexEscape(v.data);
  }
  for (int i = 0; i < 100000; ++i) {
    const std::string host = HostName(i);
    const uint64_t key = HostKey(host);
    ASSERT_NE(key, 0u) << host;
    ASSERT_EQ(key, MurmurHash64A(host, 0)) << host;
  }
}

// ---- PercentToBucketLimit --------------------------------------------------

struct LimitCase {
  double percent;
  uint32_t limit;
};

void PrintTo(const LimitCase& c, std::ostream* os) {
  *os << absl::StrFormat("%.17g -> %u", c.percent, c.limit);
}

class PercentToBucketLimitTest : public ::testing::TestWithParam<LimitCase> {};

TEST_P(PercentToBucketLimitTest, RoundsPercentTimes10000) {
  EXPECT_EQ(PercentToBucketLimit(GetParam().percent), GetParam().limit);
}

INSTANTIATE_TEST_SUITE_P(
    Limits, PercentToBucketLimitTest,
    ::testing::Values(
        LimitCase{0, 0}, LimitCase{-0.0, 0},
        LimitCase{0.00004, 0},  // below the resolution
        LimitCase{0.00005, 1},  // 0.5 rounds away from zero
        LimitCase{0.0001, 1}, LimitCase{0.00016, 2}, LimitCase{0.001, 10},
        LimitCase{1, 10000}, LimitCase{12.5, 125000}, LimitCase{50, 500000},
        LimitCase{99.9999, 999999}, LimitCase{99.99994, 999999},
        LimitCase{99.99995, kNumBuckets}, LimitCase{100, kNumBuckets},
        LimitCase{100.0001, kNumBuckets}, LimitCase{250, kNumBuckets},
        LimitCase{kInf, kNumBuckets}, LimitCase{kNaN, 0}, LimitCase{-kNaN, 0},
        LimitCase{-1, 0}, LimitCase{-0.0001, 0}, LimitCase{-kInf, 0}));

TEST(PercentToBucketLimitMonotoneTest, NeverDecreases) {
  // A step just under the 0.0001 % resolution visits every bucket boundary
  // at a drifting phase.
  constexpr double kStep = 0.0000999;
  uint32_t previous = 0;
  int steps = 0;
  for (double p = 0; p <= 100 + kStep; p = ++steps * kStep) {
    const uint32_t limit = PercentToBucketLimit(p);
    if (limit < previous || limit > kNumBuckets) {
      ADD_FAILURE() << absl::StrFormat("limit(%.9f) = %u after %u", p, limit,
                                       previous);
      break;
    }
    previous = limit;
  }
  EXPECT_EQ(previous, kNumBuckets);
}

// ---- Distribution ----------------------------------------------------------

constexpr int kHosts = 100000;

std::vector<uint32_t> Buckets(absl::string_view salt) {
  const uint64_t seed = SaltSeed(salt);
  std::vector<uint32_t> buckets(kHosts);
  for (int i = 0; i < kHosts; ++i) buckets[i] = BucketOf(seed, HostName(i));
  return buckets;
}

TEST(DistributionTest, BucketsAreRoughlyUniform) {
  for (absl::string_view salt : {"rollout-a", "rollout-b", ""}) {
    SCOPED_TRACE(salt);
    constexpr int kBins = 100;
    std::vector<int> counts(kBins, 0);
    for (uint32_t b : Buckets(salt)) ++counts[b / (kNumBuckets / kBins)];
    const double expected = static_cast<double>(kHosts) / kBins;
    double chi2 = 0;
    for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
    // 99 degrees of freedom: mean 99, sd 14. 200 is > 7 sd out.
    EXPECT_LT(chi2, 200);
    EXPECT_GT(chi2, 30);  // suspiciously perfect would be a bug too
  }
}

TEST(DistributionTest, OnePercentIsWithinSamplingError) {
  const uint32_t limit = PercentToBucketLimit(1);
  int in = 0;
  for (uint32_t b : Buckets("rollout-a")) in += b < limit;
  // Binomial(100000, 0.01): mean 1000, sd 31.5; allow 5 sd.
  EXPECT_THAT(in, AllOf(Ge(843), Le(1157)));
}

TEST(DistributionTest, SaltsAreIndependent) {
  const std::vector<uint32_t> a = Buckets("rollout-a");
  const std::vector<uint32_t> b = Buckets("rollout-b");
  const uint32_t limit = PercentToBucketLimit(10);
  int in_a = 0;
  int in_both = 0;
  int same_bucket = 0;
  for (int i = 0; i < kHosts; ++i) {
    in_a += a[i] < limit;
    in_both += a[i] < limit && b[i] < limit;
    same_bucket += a[i] == b[i];
  }
  EXPECT_THAT(in_a, AllOf(Ge(9500), Le(10500)));
  // Independent 10 % samples overlap on ~1 % of hosts (mean 1000, sd 31).
  EXPECT_THAT(in_both, AllOf(Ge(843), Le(1157)));
  // P(same bucket) = 1e-6 per host: expect ~0.1 of 100k hosts.
  EXPECT_THAT(same_bucket, Lt(5));
}

TEST(DistributionTest, GrowingPercentOnlyAddsHosts) {
  const std::vector<uint32_t> buckets = Buckets("rollout-a");
  const double percents[] = {0.0001, 0.01, 0.1,  1,     2.5,     5,  10,
                             25,     50,   75.5, 99.99, 99.9999, 100};
  std::vector<bool> previous(kHosts, false);
  int previous_count = 0;
  for (double p : percents) {
    SCOPED_TRACE(p);
    const uint32_t limit = PercentToBucketLimit(p);
    int count = 0;
    for (int i = 0; i < kHosts; ++i) {
      const bool in = buckets[i] < limit;
      if (previous[i]) {
        ASSERT_TRUE(in) << HostName(i) << " left the audience";
      }
      previous[i] = in;
      count += in;
    }
    EXPECT_GE(count, previous_count);
    previous_count = count;
  }
  EXPECT_EQ(previous_count, kHosts);
}

TEST(DistributionTest, StableAcrossCalls) {
  EXPECT_EQ(Buckets("rollout-a"), Buckets("rollout-a"));
  EXPECT_EQ(SaltSeed("rollout-a"), SaltSeed(std::string("rollout-a")));
}

}  // namespace
}  // namespace ringfence
