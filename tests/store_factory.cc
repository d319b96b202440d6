#include "store_factory.h"

#include "gtest/gtest.h"
#include "ringfence/sqlite_store.h"

namespace ringfence::testing {

std::vector<StoreFactory> AllStoreFactories() {
  std::vector<StoreFactory> out;
  out.push_back(
      {"memory", [](const std::string&) { return NewMemoryStore(); }, false});
  out.push_back({"sqlite",
                 [](const std::string& dir) {
                   SqliteStoreOptions o;
                   o.data_dir = dir;
                   auto s = OpenSqliteStore(o);
                   if (!s.ok()) {
                     ADD_FAILURE() << s.status();
                     return StorePtr();
                   }
                   return std::move(*s);
                 },
                 true});
  return out;
}

}  // namespace ringfence::testing
