"""sams: SamS adaptive batch-wise sample scheduling for DPO, from Python.

The C++ library (header-only, float32 here, CPU Eigen backend) behind a pybind11 module:

    import sams
    sched = sams.Scheduler(context_dim=64, seed=0, select={"ratio": 0.5})
    d = sched.step(policy_chosen, policy_rejected, reference_chosen, reference_rejected,
                   contexts=hidden)          # numpy arrays or CPU torch tensors
    loss = (torch.from_numpy(d.weight) * per_pair_loss).sum()

Classes: Scheduler, the baselines FullBatch, UniformSelector, LossSelector, MarginSelector,
GuidedScheduler (with GuidedConfig and CountSketch), the configuration classes
(SchedulerConfig and its sections), Decision, and the exceptions
Error > InvalidArgument (also a ValueError), CheckpointError, BackendError (also
RuntimeError). docs/python.md has the guide.
"""

from ._sams import (  # noqa: F401  (re-exported)
    Activation,
    BackendError,
    CheckpointError,
    CountSketch,
    Decision,
    DistributedMode,
    DistributedScheduler,
    Error,
    Extreme,
    FullBatch,
    GuidedConfig,
    GuidedDrop,
    GuidedScheduler,
    InvalidArgument,
    LossConfig,
    LossKind,
    LossSelector,
    MarginSelector,
    NetworkConfig,
    OptimizerConfig,
    PoolConfig,
    RewardConfig,
    RewardMode,
    RuntimeFailure,
    Scheduler,
    SchedulerConfig,
    SelectionConfig,
    SelectionRule,
    UniformSelector,
    WeightScaling,
    __version__,
)

__all__ = [
    "Activation",
    "BackendError",
    "CheckpointError",
    "CountSketch",
    "Decision",
    "DistributedMode",
    "DistributedScheduler",
    "Error",
    "Extreme",
    "FullBatch",
    "GuidedConfig",
    "GuidedDrop",
    "GuidedScheduler",
    "InvalidArgument",
    "LossConfig",
    "LossKind",
    "LossSelector",
    "MarginSelector",
    "NetworkConfig",
    "OptimizerConfig",
    "PoolConfig",
    "RewardConfig",
    "RewardMode",
    "RuntimeFailure",
    "Scheduler",
    "SchedulerConfig",
    "SelectionConfig",
    "SelectionRule",
    "UniformSelector",
    "WeightScaling",
    "__version__",
]

# The classes live in sams._sams; say `sams.Scheduler` in help() and reprs.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        try:
            _obj.__module__ = "sams"
        except (AttributeError, TypeError):
            pass
del _name, _obj
