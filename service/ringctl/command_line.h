// ringctl's command line: the command tree on CLI11, the global flags, exit
// codes, and usage errors.
//
// Commands register themselves (commands.h) as leaves of the tree, each with
// its flags and positional arguments:
//
//   CLI::App* pause = cli.AddCommand({"rollout", "pause"}, "pause a rollout",
//                                    CommandLine::kOnline, run);
//   cli.AddArgument(pause, "ID", &flags->id, "the rollout");
//   cli.AddFlag(pause, "reason", &flags->reason, "why",
//               CommandLine::kRequired);
//
// `run` gets an Invocation: the global flags, the Client of an online
// command, and Usage() for a bad flag value.
//
// What ringctl has always accepted and CLI11 does not express is kept by
// a canonicalizing pass before CLI11 parses (Canonicalize):
//   * flag names may be spelled with '_' or '-' (--rpc_timeout is
//     --rpc-timeout), also mixed;
//   * flags may stand anywhere, also before the command words, and a value
//     may follow its flag as the next argument even if it starts with '-';
//   * on/off flags take no value or =true / =false; given twice, the last
//     one counts (for every flag);
//   * a flag that must be given needs a non-empty value ("missing --reason");
//   * the usage messages (unknown flag, missing flag, argument count).
// CLI11 then stores the values, selects the command and prints --help.
//
// Thread safety: not thread-safe (one per process, used from main()).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ringfence::ringctl {

// Exit codes.
inline constexpr int kExitOk = 0;      // success; cleared; completed
inline constexpr int kExitNotYet = 1;  // the gate is pending; held for approval
inline constexpr int kExitRejected = 2;  // halted, rejected, refused
inline constexpr int kExitError = 3;     // usage, connection, server error

// The flags every command accepts.
struct GlobalFlags {
  std::string server = "127.0.0.1:7443";
  // Default: $RINGFENCE_TOKEN.
  std::string token;
  bool json = false;
  // A duration ("10s"); empty: the default (10s).
  std::string rpc_timeout;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::optional<std::string> tls_server_name;
};

class Client;

// What a command runs with.
class Invocation {
 public:
  Invocation(const GlobalFlags* flags, Client* client, const CLI::App* root)
      : flags_(flags), client_(client), root_(root) {}

  const GlobalFlags& flags() const { return *flags_; }
  bool json() const { return flags_->json; }
  // REQUIRES: an online command.
  Client& client() const { return *client_; }

  // Usage
  //
  // Prints "ringctl: MESSAGE" and the command's help on stderr; returns
  // kExitError.
  int Usage(absl::string_view message) const;

 private:
  const GlobalFlags* flags_;
  Client* client_;
  const CLI::App* root_;
};

// Prints "ringctl: MESSAGE" and `app`'s help (of its selected command) on
// stderr; returns kExitError.
int PrintUsage(const CLI::App& app, absl::string_view message);

// ReadWholeFile
//
// Reads `path` whole into `*out`; false after "ringctl COMMAND: cannot read
// PATH" on stderr.
bool ReadWholeFile(const char* command, const std::string& path,
                   std::string* out);

class CommandLine {
 public:
  // Whether a command talks to the server (and gets a Client) or runs
  // offline.
  enum Mode { kOnline, kOffline };
  // Whether a flag must be given, with a non-empty value.
  enum Need { kOptional, kRequired };
  using Action = std::function<int(const Invocation&)>;

  CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // AddCommand
  //
  // Adds the command `path` (e.g. {"rollout", "start"}; the nouns before
  // the last word are created as needed), summarized in one line, and
  // returns its CLI11 app, for AddFlag, AddSwitch and AddArgument.
  CLI::App* AddCommand(const std::vector<std::string>& path,
                       const std::string& summary, Mode mode, Action run);

  // Sets what `command`'s --help says below its flags (paragraphs separated
  // by blank lines; wrapped).
  void SetDetails(CLI::App* command, const std::string& details);

  // Describes the noun `name` (a group of commands, e.g. "rollout").
  void DescribeNoun(const std::string& name, const std::string& description);

  // AddFlag
  //
  // --NAME=VALUE (NAME spelled with '-') into `*value`.
  CLI::Option* AddFlag(CLI::App* command, const std::string& name,
                       std::string* value, const std::string& description,
                       Need need = kOptional);
  // The same, nullopt if not given (an empty value is given).
  CLI::Option* AddFlag(CLI::App* command, const std::string& name,
                       std::optional<std::string>* value,
                       const std::string& description);

  // AddSwitch
  //
  // --NAME (or --NAME=true / --NAME=false): an on/off flag.
  CLI::Option* AddSwitch(CLI::App* command, const std::string& name,
                         bool* value, const std::string& description);

  // AddArgument
  //
  // The command's next positional argument (every one is required).
  CLI::Option* AddArgument(CLI::App* command, const std::string& name,
                           std::string* value, const std::string& description);

  // Run
  //
  // Parses the command line and runs the command; its exit code.
  int Run(int argc, const char* const* argv);

 private:
  struct Command {
    Mode mode = kOffline;
    Action run;
  };
  // The command line after the canonicalizing pass.
  struct Canonical {
    std::vector<std::string> positional;
    // Flag name (with '-') -> value; on/off flags that are on: "true".
    std::map<std::string, std::string> flags;
  };

  CLI::App* Noun(const std::string& name);
  bool Canonicalize(int argc, const char* const* argv, Canonical* out,
                    std::string* error) const;
  // The command words at the start of `positional`, and the app they name.
  const CLI::App* Resolve(const std::vector<std::string>& positional,
                          size_t* words) const;
  // Whether --NAME is a flag of `app` or of a command above it.
  static bool Knows(const CLI::App* app, const std::string& name);
  // The usage error of `command`'s flags and arguments, if any.
  static std::optional<std::string> CheckArgs(const Canonical& args,
                                              const CLI::App* app,
                                              size_t words);
  // Checks the arguments of `command` and runs it, connecting first if it
  // is online; nullptr: reports an unknown command.
  int Dispatch(const Canonical& args, const CLI::App* app, size_t words,
               const Command* command);

  CLI::App root_;
  GlobalFlags flags_;
  std::map<const CLI::App*, Command> commands_;
  // Every on/off flag's name, across all commands.
  std::set<std::string> switches_;
};

}  // namespace ringfence::ringctl
