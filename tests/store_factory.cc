#include "store_factory.h"

namespace ringfence::testing {

std::vector<StoreFactory> AllStoreFactories() {
  std::vector<StoreFactory> out;
  out.push_back({"memory", [](const std::string&) { return NewMemoryStore(); },
                 false});
  return out;
}

}  // namespace ringfence::testing
