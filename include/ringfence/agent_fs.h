// The host agent's file system: the few durable operations the agent's
// state, content store and telemetry spool are built on, a POSIX
// implementation, and an in-memory fake that simulates crashes.
//
// Every mutating operation is durable when it returns OK: a crash (power
// loss, kernel panic, kill -9) after it returns never undoes it. A crash
// *during* one leaves what the operation documents below, nothing worse.
// Paths are plain strings joined with "/"; the agent only uses paths under
// its own state directory.
//
// Thread safety: implementations need not be thread-safe; the agent calls
// them from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringfence {

class AgentFileSystem {
 public:
  virtual ~AgentFileSystem() = default;

  // ReadFile
  //
  // The whole file. NOT_FOUND if it does not exist; other errors INTERNAL
  // (or UNAVAILABLE from the fake after a simulated crash).
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;

  // WriteFileAtomically
  //
  // Replaces `path` with `contents`: writes `path` + ".tmp", fsyncs it,
  // renames it over `path` and fsyncs the directory. A crash leaves the old
  // file or the new one, never a mix (and possibly a stray ".tmp" file,
  // which readers ignore and the next write replaces).
  virtual absl::Status WriteFileAtomically(const std::string& path,
                                           absl::string_view contents) = 0;

  // AppendDurably
  //
  // Appends `data` to `path` (creating it, and then fsyncing the directory)
  // and fsyncs the file. A crash may leave any prefix of `data` appended
  // (a torn append): readers must frame their records.
  virtual absl::Status AppendDurably(const std::string& path,
                                     absl::string_view data) = 0;

  // WriteAtDurably
  //
  // Writes `data` over the bytes of `path` from byte `offset` (creating the
  // file; bytes between its end and `offset` read as zeros) and fdatasyncs
  // it; the first call for `path` on this object also fsyncs the directory,
  // whoever created the file. A crash may leave any prefix
  // of `data` written over the old bytes (a torn write): readers must check
  // what they read (EventSpool's cursor slots carry a CRC).
  virtual absl::Status WriteAtDurably(const std::string& path, uint64_t offset,
                                      absl::string_view data) = 0;

  // Remove
  //
  // Removes `path` and fsyncs its directory. OK if it does not exist.
  virtual absl::Status Remove(const std::string& path) = 0;

  // List
  //
  // The names (not paths) of the regular files directly in `dir`, sorted.
  // An empty list if `dir` does not exist.
  virtual absl::StatusOr<std::vector<std::string>> List(
      const std::string& dir) = 0;

  // MakeDirs
  //
  // Creates `dir` and its parents (durably) if they do not exist.
  virtual absl::Status MakeDirs(const std::string& dir) = 0;
};

// NewPosixFileSystem
//
// The real implementation (open/write/fsync/rename/fsync of the directory).
// Errors are INTERNAL naming the file and errno's text.
std::unique_ptr<AgentFileSystem> NewPosixFileSystem();

// MemoryFileSystem
//
// An in-memory fake for tests. All of its state is "on disk": every
// operation is durable when it returns, as the interface promises, so a
// crash can only hit the operation in progress. Crashes are scheduled by
// counting mutating operations (WriteFileAtomically, AppendDurably,
// WriteAtDurably, Remove; MakeDirs is not counted):
//
//   fs.CrashAtMutation(k, mode);  // the k-th mutating call from now crashes
//
// The crashing operation leaves, by `mode`:
//   kBefore  nothing (a crash between the previous durable step and it);
//   kTorn    appends and in-place writes: a seeded-random strict,
//            non-empty prefix of the data (a torn record, a torn slot);
//            atomic writes: only a partial ".tmp" file; removes: nothing;
//   kAfter   all of it (a crash between it and the next durable step).
// It then returns UNAVAILABLE, and so does every later call, until
// Reboot(): the process is dead. Tests then drop the agent and start a new
// one on the same file system (a reboot).
class MemoryFileSystem final : public AgentFileSystem {
 public:
  enum class CrashMode { kBefore, kTorn, kAfter };

  explicit MemoryFileSystem(uint64_t seed = 1) : rng_(seed) {}

  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::Status WriteFileAtomically(const std::string& path,
                                   absl::string_view contents) override;
  absl::Status AppendDurably(const std::string& path,
                             absl::string_view data) override;
  absl::Status WriteAtDurably(const std::string& path, uint64_t offset,
                              absl::string_view data) override;
  absl::Status Remove(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> List(
      const std::string& dir) override;
  absl::Status MakeDirs(const std::string& dir) override;

  // CrashAtMutation
  //
  // Schedules a crash at the `k`-th mutating call from now (0 = the next
  // one). Replaces any crash already scheduled.
  void CrashAtMutation(int64_t k, CrashMode mode);

  // CrashNow
  //
  // The process dies now (e.g. the content a test loads crashes the host):
  // every call fails until Reboot().
  void CrashNow() { crashed_ = true; }

  // Reboot
  //
  // Clears the crash: the next agent starts on what is on disk.
  void Reboot() {
    crashed_ = false;
    crash_at_ = -1;
  }

  bool crashed() const { return crashed_; }

  // Mutating calls so far (including the crashing one).
  int64_t mutations() const { return mutations_; }

  // The files, path -> contents (for tests to inspect or corrupt).
  std::map<std::string, std::string>& files() { return files_; }

 private:
  // Returns true if this mutating call is the one that crashes.
  bool Tick();
  // A seeded-random strict, non-empty prefix length of `size` bytes (0 if
  // there is none): what a torn write leaves.
  size_t TornLength(size_t size);
  absl::Status Dead() const;

  std::map<std::string, std::string> files_;
  std::mt19937_64 rng_;
  int64_t mutations_ = 0;
  int64_t crash_at_ = -1;
  CrashMode crash_mode_ = CrashMode::kBefore;
  bool crashed_ = false;
};

}  // namespace ringfence
