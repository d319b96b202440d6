// ringctl's commands, grouped by noun; each Add* registers its commands
// (their flags, arguments and what they run) with the command line.
//
//   ringctl release create|validate|get|list         release.cc
//   ringctl rollout start|status|list|watch|pause|resume|abort|promote
//                                                    rollout.cc
//   ringctl gate check                               gate.cc
//   ringctl emergency-stop                           emergency_stop.cc
//   ringctl audit list|verify                        audit.cc
//   ringctl cluster status                           cluster.cc
//   ringctl approvals list, approve, reject          approvals.cc
//   ringctl plan explain (offline)                   plan.cc
//   ringctl simulate (offline)                       simulate.cc
//   ringctl validate (offline)                       validate.cc
//   ringctl keygen, sign (offline)                   keys.cc
#pragma once

#include "service/ringctl/command_line.h"

namespace ringfence::ringctl {

void AddReleaseCommands(CommandLine& cli);
void AddRolloutCommands(CommandLine& cli);
void AddGateCommands(CommandLine& cli);
void AddEmergencyStopCommand(CommandLine& cli);
void AddAuditCommands(CommandLine& cli);
void AddClusterCommands(CommandLine& cli);
void AddApprovalCommands(CommandLine& cli);
void AddPlanCommands(CommandLine& cli);
void AddSimulateCommand(CommandLine& cli);
void AddValidateCommand(CommandLine& cli);
void AddKeyCommands(CommandLine& cli);

}  // namespace ringfence::ringctl
