// The umbrella header: everything a CPU host needs, `#include <sams/sams.hpp>`. Headers that
// need nvcc, thrust, xtensor or LibTorch are not included here; include them explicitly.
// One include per line, sorted within its folder group below; tools/amalgamate.py builds
// single_include/sams/sams.hpp from this file (CI fails while that file is stale).
#pragma once

#include <sams/version.hpp>

// core/
#include <sams/core/convert.hpp>
#include <sams/core/decision.hpp>
#include <sams/core/error.hpp>
#include <sams/core/limits.hpp>
#include <sams/core/rng.hpp>
#include <sams/core/views.hpp>

// loss/
#include <sams/loss/concept.hpp>
#include <sams/loss/evaluate.hpp>
#include <sams/loss/loss_config.hpp>
#include <sams/loss/losses.hpp>
#include <sams/loss/pair_stats.hpp>

// context/
#include <sams/context/concept.hpp>
#include <sams/context/context_matrix.hpp>
#include <sams/context/hidden_states.hpp>
#include <sams/context/identity.hpp>
#include <sams/context/mean_pool.hpp>

// reward/
#include <sams/reward/progress.hpp>
#include <sams/reward/reward_config.hpp>
#include <sams/reward/reward_function.hpp>
#include <sams/reward/sams_reward.hpp>

// nn/
#include <sams/nn/exploit_net.hpp>
#include <sams/nn/explore_net.hpp>
#include <sams/nn/network_config.hpp>
#include <sams/nn/parameters.hpp>

// scheduler/
#include <sams/scheduler/any_scheduler.hpp>
#include <sams/scheduler/baselines.hpp>
#include <sams/scheduler/checkpoint.hpp>
#include <sams/scheduler/concept.hpp>
#include <sams/scheduler/decision_fill.hpp>
#include <sams/scheduler/pending_selection.hpp>
#include <sams/scheduler/replay_pool.hpp>
#include <sams/scheduler/reservoir.hpp>
#include <sams/scheduler/sams_checkpoint.hpp>
#include <sams/scheduler/sams_scheduler.hpp>
#include <sams/scheduler/scheduler_config.hpp>
#include <sams/scheduler/selection.hpp>

// guided/
#include <sams/guided/agreement_memory.hpp>
#include <sams/guided/guided_config.hpp>
#include <sams/guided/guided_scheduler.hpp>
#include <sams/guided/noise_model.hpp>
#include <sams/guided/sketch.hpp>

// distributed/ (the MPI adapter, sams/distributed/mpi.hpp, needs <mpi.h>: include it explicitly)
#include <sams/distributed/communicator.hpp>
#include <sams/distributed/distributed_scheduler.hpp>
#include <sams/distributed/thread_group.hpp>

// backend/ (the concept), then backend/eigen/ (the default CPU backend)
#include <sams/backend/concept.hpp>
#include <sams/backend/preconditions.hpp>
#include <sams/backend/types.hpp>
#include <sams/backend/eigen/eigen_backend.hpp>
#include <sams/backend/eigen/gemm.hpp>
#include <sams/backend/eigen/tensor.hpp>
