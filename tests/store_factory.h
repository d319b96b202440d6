// Store factories for parameterized suites: every controller test runs on
// every Store implementation.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "ringfence/store.h"

namespace ringfence::testing {

struct StoreFactory {
  std::string name;
  // Opens a store over `dir` (a fresh temporary directory per test). Opening
  // again over the same `dir` must see what the previous store committed.
  std::function<StorePtr(const std::string& dir)> open;
  // Whether reopening sees the data (false for the in-memory store, where the
  // test keeps the same instance instead).
  bool persistent = false;
};

std::vector<StoreFactory> AllStoreFactories();

// For readable test names in failure messages.
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

}  // namespace ringfence::testing
