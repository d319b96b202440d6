// A valid release for tests: `id` (also its version) of `content_type`,
// whose SHA-256 digest is 64 times `digest` (any lower-case hex character,
// so that releases differ), of 1234 bytes.
#pragma once

#include <string>

#include "ringfence/model.h"

namespace ringfence::testing {

inline Release TestRelease(const std::string& id,
                           const std::string& content_type, char digest) {
  Release r;
  r.set_id(id);
  r.set_content_type(content_type);
  r.set_version(id);
  r.set_digest_sha256(std::string(64, digest));
  r.set_size_bytes(1234);
  return r;
}

}  // namespace ringfence::testing
