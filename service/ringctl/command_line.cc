#include "service/ringctl/command_line.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "ringfence/model.h"
#include "service/ringctl/client.h"
#include "service/tls.h"

namespace ringfence::ringctl {
namespace {

constexpr char kDescription[] =
    "ringctl: the command-line client of ringfenced. Every command has its "
    "own --help.";

constexpr char kRootFooter[] =
    "Flags may be spelled with '_' or '-' (--rpc_timeout), given anywhere on "
    "the command line, and as --flag=VALUE or --flag VALUE.\n\n"
    "Offline commands (no server, no token): plan explain, simulate, "
    "validate, keygen, sign.\n\n"
    "Exit codes: 0 ok/cleared, 1 not yet (the gate is pending), 2 halted, "
    "rejected or refused by the server (INVALID_ARGUMENT, NOT_FOUND, "
    "ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE), 3 usage, "
    "connection, authentication or server error.";

constexpr char kCommandFooter[] =
    "Global flags (ringctl --help): --server, --token, --json, "
    "--rpc-timeout, --tls-ca, --tls-cert, --tls-key, --tls-server-name. "
    "Flags may be spelled with '_' or '-'.";

// `text`'s paragraphs (separated by "\n\n") with their lines filled to at
// most 76 columns.
std::string Wrap(absl::string_view text) {
  constexpr size_t kWidth = 76;
  std::vector<std::string> paragraphs;
  for (absl::string_view paragraph : absl::StrSplit(text, "\n\n")) {
    std::string out;
    size_t column = 0;
    for (absl::string_view word :
         absl::StrSplit(paragraph, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      if (column > 0 && column + 1 + word.size() > kWidth) {
        out += '\n';
        column = 0;
      } else if (column > 0) {
        out += ' ';
        ++column;
      }
      absl::StrAppend(&out, word);
      column += word.size();
    }
    paragraphs.push_back(std::move(out));
  }
  return absl::StrJoin(paragraphs, "\n\n");
}

// Parent flags (the global ones) are known to every command; what a command
// does not know is left to CheckArgs, which names it in ringctl's words.
void Configure(CLI::App* app) {
  app->fallthrough();
  app->allow_extras();
}

}  // namespace

int PrintUsage(const CLI::App& app, absl::string_view message) {
  std::fprintf(stderr, "ringctl: %s\n\n%s", std::string(message).c_str(),
               app.help().c_str());
  return kExitError;
}

int Invocation::Usage(absl::string_view message) const {
  return PrintUsage(*root_, message);
}

bool ReadWholeFile(const char* command, const std::string& path,
                   std::string* out) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    std::fprintf(stderr, "ringctl %s: cannot read %s\n", command, path.c_str());
    return false;
  }
  *out = *std::move(contents);
  return true;
}

CommandLine::CommandLine() : root_(kDescription, "ringctl") {
  root_.set_help_flag("--help", "print this help");
  switches_.insert("help");
  Configure(&root_);
  root_.footer(Wrap(kRootFooter));
  AddFlag(&root_, "server", &flags_.server,
          "address of ringfenced (default 127.0.0.1:7443)")
      ->type_name("HOST:PORT");
  AddFlag(&root_, "token", &flags_.token,
          "bearer token (default: $RINGFENCE_TOKEN)")
      ->envname("RINGFENCE_TOKEN");
  AddSwitch(&root_, "json", &flags_.json, "print responses as protobuf JSON");
  AddFlag(&root_, "rpc-timeout", &flags_.rpc_timeout,
          "deadline of each call (default 10s)")
      ->type_name("DURATION");
  AddFlag(&root_, "tls-ca", &flags_.tls_ca,
          "PEM CA certificates of the server: connect over TLS")
      ->type_name("FILE");
  AddFlag(&root_, "tls-cert", &flags_.tls_cert,
          "PEM client certificate chain (mutual TLS; with --tls-key)")
      ->type_name("FILE");
  AddFlag(&root_, "tls-key", &flags_.tls_key, "PEM private key of --tls-cert")
      ->type_name("FILE");
  AddFlag(&root_, "tls-server-name", &flags_.tls_server_name,
          "name to verify the server's certificate against (default: the "
          "--server host)")
      ->type_name("NAME");
}

CLI::App* CommandLine::Noun(const std::string& name) {
  for (CLI::App* sub : root_.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == name) return sub;
  }
  CLI::App* noun = root_.add_subcommand(name, "");
  Configure(noun);
  noun->footer(Wrap(kCommandFooter));
  return noun;
}

void CommandLine::SetDetails(CLI::App* command, const std::string& details) {
  command->footer(Wrap(absl::StrCat(details, "\n\n", kCommandFooter)));
}

void CommandLine::DescribeNoun(const std::string& name,
                               const std::string& description) {
  Noun(name)->description(description);
}

CLI::App* CommandLine::AddCommand(const std::vector<std::string>& path,
                                  const std::string& summary, Mode mode,
                                  Action run) {
  // Nouns are one level deep ("rollout start").
  CLI::App* parent = path.size() > 1 ? Noun(path.front()) : &root_;
  CLI::App* app = parent->add_subcommand(path.back(), summary);
  Configure(app);
  app->footer(Wrap(kCommandFooter));
  commands_[app] = Command{mode, std::move(run)};
  return app;
}

CLI::Option* CommandLine::AddFlag(CLI::App* command, const std::string& name,
                                  std::string* value,
                                  const std::string& description, Need need) {
  CLI::Option* opt = command->add_option("--" + name, *value, description);
  // CLI11 marks it in --help; CheckArgs reports it missing (or empty).
  if (need == kRequired) opt->required();
  return opt;
}

CLI::Option* CommandLine::AddFlag(CLI::App* command, const std::string& name,
                                  std::optional<std::string>* value,
                                  const std::string& description) {
  return command->add_option("--" + name, *value, description);
}

CLI::Option* CommandLine::AddSwitch(CLI::App* command, const std::string& name,
                                    bool* value,
                                    const std::string& description) {
  switches_.insert(name);
  return command->add_flag("--" + name, *value, description);
}

CLI::Option* CommandLine::AddArgument(CLI::App* command,
                                      const std::string& name,
                                      std::string* value,
                                      const std::string& description) {
  return command->add_option(name, *value, description)
      ->required()
      ->type_name("");
}

bool CommandLine::Canonicalize(int argc, const char* const* argv,
                               Canonical* out, std::string* error) const {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) out->positional.push_back(argv[i]);
      break;
    }
    if (!absl::StartsWith(a, "--")) {
      out->positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    absl::StrReplaceAll({{"_", "-"}}, &name);
    if (switches_.count(name) > 0) {
      if (has_value && value != "true" && value != "false") {
        *error = absl::StrCat("--", name, " takes no value (or true/false)");
        return false;
      }
      if (!has_value || value == "true") {
        out->flags[name] = "true";
      } else {
        out->flags.erase(name);
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *error = absl::StrCat("--", name, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    out->flags[name] = value;
  }
  return true;
}

const CLI::App* CommandLine::Resolve(const std::vector<std::string>& positional,
                                     size_t* words) const {
  const CLI::App* app = &root_;
  *words = 0;
  while (*words < positional.size()) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub :
         app->get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->get_name() == positional[*words]) next = sub;
    }
    if (next == nullptr) break;
    app = next;
    ++*words;
  }
  return app;
}

bool CommandLine::Knows(const CLI::App* app, const std::string& name) {
  for (; app != nullptr; app = app->get_parent()) {
    if (app->get_option_no_throw("--" + name) != nullptr) return true;
  }
  return false;
}

std::optional<std::string> CommandLine::CheckArgs(const Canonical& args,
                                                  const CLI::App* app,
                                                  size_t words) {
  for (const auto& [name, value] : args.flags) {
    if (!Knows(app, name)) {
      return absl::StrCat("unknown flag --", name, " for this command");
    }
  }
  std::vector<std::string> required;
  size_t arguments = 0;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_positional()) {
      ++arguments;
    } else if (opt->get_required()) {
      required.push_back(opt->get_lnames().front());
    }
  }
  std::sort(required.begin(), required.end());
  for (const std::string& name : required) {
    auto it = args.flags.find(name);
    if (it == args.flags.end() || it->second.empty()) {
      return absl::StrCat("missing --", name);
    }
  }
  if (args.positional.size() != words + arguments) {
    return arguments == 0
               ? std::string("unexpected argument")
               : absl::StrCat("expected ", arguments, " argument(s)");
  }
  return std::nullopt;
}

int CommandLine::Run(int argc, const char* const* argv) {
  Canonical args;
  std::string error;
  if (!Canonicalize(argc, argv, &args, &error)) {
    return PrintUsage(root_, error);
  }
  size_t words = 0;
  const CLI::App* app = Resolve(args.positional, &words);

  // CLI11 gets the command words, then the flags the command knows (each
  // once, its value attached), then the command's arguments after "--".
  std::vector<std::string> cli;
  cli.reserve(args.positional.size() + 2 * args.flags.size() + 1);
  for (size_t i = 0; i < words; ++i) cli.push_back(args.positional[i]);
  for (const auto& [name, value] : args.flags) {
    if (!Knows(app, name)) continue;  // CheckArgs reports it
    if (switches_.count(name) > 0) {
      cli.push_back("--" + name);
    } else if (value.empty()) {
      // CLI11 takes "--name=" as "--name" followed by its value.
      cli.push_back("--" + name);
      cli.push_back("");
    } else {
      cli.push_back(absl::StrCat("--", name, "=", value));
    }
  }
  if (words < args.positional.size()) {
    cli.push_back("--");
    cli.insert(cli.end(), args.positional.begin() + words,
               args.positional.end());
  }
  std::reverse(cli.begin(), cli.end());  // what CLI::App::parse expects
  try {
    root_.parse(cli);
  } catch (const CLI::CallForHelp&) {
    std::fputs(root_.help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::RequiredError&) {
    // A missing flag or argument: CheckArgs names it.
  } catch (const CLI::ParseError& e) {
    return PrintUsage(root_, e.what());
  }

  if (args.positional.empty()) return PrintUsage(root_, "missing command");
  auto it = commands_.find(app);
  return Dispatch(args, app, words,
                  it == commands_.end() ? nullptr : &it->second);
}

int CommandLine::Dispatch(const Canonical& args, const CLI::App* app,
                          size_t words, const Command* command) {
  // No client: offline commands, and usage errors.
  const Invocation offline(&flags_, nullptr, &root_);
  // Unknown words after an offline noun ("plan") name the noun; otherwise
  // the TLS flags and --rpc-timeout are checked first, then the whole
  // command line is named.
  if (command == nullptr && words > 0) {
    const CLI::App* noun = app;
    while (noun->get_parent() != &root_) noun = noun->get_parent();
    bool offline_noun = true;
    for (const CLI::App* sub :
         noun->get_subcommands([](const CLI::App*) { return true; })) {
      auto c = commands_.find(sub);
      if (c == commands_.end() || c->second.mode != kOffline) {
        offline_noun = false;
      }
    }
    if (offline_noun) {
      return offline.Usage(
          absl::StrCat("unknown command \"", args.positional[0], "\""));
    }
  }
  if (command != nullptr && command->mode == kOffline) {
    if (std::optional<std::string> e = CheckArgs(args, app, words)) {
      return offline.Usage(*e);
    }
    return command->run(offline);
  }

  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(flags_.tls_ca, flags_.tls_cert, flags_.tls_key);
  if (!tls.ok()) {
    return offline.Usage(absl::StrCat("--", tls.status().message()));
  }
  if (flags_.tls_server_name.has_value()) {
    if (!tls->has_value()) {
      return offline.Usage(
          "--tls-server-name needs TLS (--tls-ca or --tls-cert)");
    }
    (*tls)->server_name_override = *flags_.tls_server_name;
  }
  Client client(flags_, *tls);
  if (!client.SetRpcTimeout(flags_.rpc_timeout)) {
    return offline.Usage("--rpc-timeout must be a positive duration, e.g. 10s");
  }
  if (command == nullptr) {
    return offline.Usage(absl::StrCat(
        "unknown command \"", absl::StrJoin(args.positional, " "), "\""));
  }
  if (std::optional<std::string> e = CheckArgs(args, app, words)) {
    return offline.Usage(*e);
  }
  return command->run(Invocation(&flags_, &client, &root_));
}

}  // namespace ringfence::ringctl
