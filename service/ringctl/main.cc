// ringctl: the command-line client of ringfenced, and offline tools for
// publishers (content validation, keys and signatures, plan explanations,
// the fleet simulator). `ringctl --help` lists the commands, `ringctl
// COMMAND --help` a command's flags; service/README.md shows them in use.
//
// Exit codes:
//   0  success; the gate is cleared; the watched rollout completed
//   1  not yet: the gate is pending (after --timeout with --wait)
//   2  halted or rejected (gate, watched rollout), or the server refused the
//      request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//      FAILED_PRECONDITION, OUT_OF_RANGE); `validate`: the file is rejected
//   3  usage error, connection or authentication failure, server error;
//      offline commands: unreadable files, invalid schema, manifest or key
#include "service/ringctl/command_line.h"
#include "service/ringctl/commands.h"

namespace ringctl = ::ringfence::ringctl;

int main(int argc, char** argv) {
  ringctl::CommandLine cli;
  ringctl::AddReleaseCommands(cli);
  ringctl::AddRolloutCommands(cli);
  ringctl::AddGateCommands(cli);
  ringctl::AddEmergencyStopCommand(cli);
  ringctl::AddAuditCommands(cli);
  ringctl::AddClusterCommands(cli);
  ringctl::AddApprovalCommands(cli);
  ringctl::AddPlanCommands(cli);
  ringctl::AddSimulateCommand(cli);
  ringctl::AddValidateCommand(cli);
  ringctl::AddKeyCommands(cli);
  return cli.Run(argc, argv);
}
