// The audit log as a hash chain.
//
// Every audit entry carries the SHA-256 of the previous entry (`prev_hash`)
// and its own (`hash`), so changing, removing or reordering any stored entry
// breaks the chain at that point. Stores call ChainAuditEntry() when they
// append; VerifyAuditLog() walks a store's log and names the first broken
// link.
//
//   hash = lower-hex SHA-256( prev_hash || "\n" || body )
//   body = the entry, with `hash` cleared, serialized with protobuf's
//          deterministic serialization
// The first entry's prev_hash is 64 '0' characters.
//
// Thread safety: pure functions, except VerifyAuditLog, which reads a Store
// (itself thread-safe).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ringfence/model.h"
#include "ringfence/store.h"

namespace ringfence {

// The prev_hash of the first entry.
inline constexpr char kAuditGenesisHash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

// ChainAuditEntry
//
// Sets entry->prev_hash to `prev_hash` and entry->hash to the entry's hash.
// REQUIRES: entry->seq() is set.
void ChainAuditEntry(const std::string& prev_hash, AuditEntry* entry);

// ComputeAuditHash
//
// The hash `entry` should carry (its own `hash` field is ignored).
std::string ComputeAuditHash(const AuditEntry& entry);

// Sha256Hex
//
// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

struct AuditVerification {
  // Entries checked.
  uint64_t entries = 0;
  // True if every link holds.
  bool ok = true;
  // The seq of the first entry whose link is broken (0 if ok).
  uint64_t first_broken_seq = 0;
  // What is wrong with it, for people.
  std::string problem;
};

// AuditChainVerifier
//
// Checks a log's entries one at a time, in log order from the first:
// sequence numbers consecutive from 1, each prev_hash equal to the previous
// hash (the first: kAuditGenesisHash), each hash equal to
// ComputeAuditHash. VerifyAuditLog uses it on a Store; a client reading
// the log over the API (ringctl audit verify) uses it on what it reads.
//
//   AuditChainVerifier v;
//   for (const AuditEntry& e : entries) if (!v.Add(e)) break;
//   if (!v.result().ok) ... v.result().first_broken_seq ...
class AuditChainVerifier {
 public:
  // Checks `entry`, the next one. False once a link is broken (result()
  // names it); entries added after that are ignored.
  bool Add(const AuditEntry& entry);
  // The verification so far (entries counts those checked).
  const AuditVerification& result() const { return v_; }
  // The hash of the last entry that checked (kAuditGenesisHash if none).
  const std::string& head_hash() const { return prev_; }

 private:
  AuditVerification v_;
  std::string prev_ = kAuditGenesisHash;
  uint64_t last_seq_ = 0;
};

// VerifyAuditLog
//
// Reads every audit entry of `store` and checks the chain: sequence numbers
// consecutive from 1, each prev_hash equal to the previous hash, each hash
// equal to the recomputed one. Errors only if the store cannot be read.
absl::StatusOr<AuditVerification> VerifyAuditLog(Store& store);

}  // namespace ringfence
