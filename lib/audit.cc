#include "ringfence/audit.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

std::string DeterministicBytes(const AuditEntry& entry) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    entry.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string ComputeAuditHash(const AuditEntry& entry) {
  AuditEntry body = entry;
  body.clear_hash();
  return Sha256Hex(
      absl::StrCat(entry.prev_hash(), "\n", DeterministicBytes(body)));
}

void ChainAuditEntry(const std::string& prev_hash, AuditEntry* entry) {
  entry->set_prev_hash(prev_hash);
  entry->set_hash(ComputeAuditHash(*entry));
}

bool AuditChainVerifier::Add(const AuditEntry& e) {
  if (!v_.ok) return false;
  ++v_.entries;
  const uint64_t expected_seq = last_seq_ + 1;
  auto broken = [&](std::string problem) {
    v_.ok = false;
    v_.first_broken_seq = expected_seq;
    v_.problem = std::move(problem);
    return false;
  };
  if (e.seq() != expected_seq) {
    return broken(absl::StrCat("entry ", expected_seq, " is missing (next is ",
                               e.seq(), ")"));
  }
  if (e.prev_hash() != prev_) {
    return broken(absl::StrCat("entry ", e.seq(), " does not link to entry ",
                               e.seq() - 1, ": prev_hash ", e.prev_hash(),
                               ", expected ", prev_));
  }
  const std::string h = ComputeAuditHash(e);
  if (e.hash() != h) {
    return broken(absl::StrCat("entry ", e.seq(),
                               " was altered: its content hashes to ", h,
                               ", recorded ", e.hash()));
  }
  prev_ = e.hash();
  last_seq_ = e.seq();
  return true;
}

absl::StatusOr<AuditVerification> VerifyAuditLog(Store& store) {
  AuditChainVerifier verifier;
  uint64_t after = 0;
  constexpr size_t kPage = 1000;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<AuditEntry> page,
                     store.ReadAudit(after, kPage));
    for (const AuditEntry& e : page) {
      if (!verifier.Add(e)) return verifier.result();
      after = e.seq();
    }
    if (page.size() < kPage) break;
  }
  return verifier.result();
}

}  // namespace ringfence
