# Type stubs for sams (the pybind11 module sams._sams re-exported). Arrays are numpy arrays;
# step() also takes CPU torch tensors and sequences of numbers.
from enum import Enum
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = Union[npt.ArrayLike, "torch.Tensor"]  # noqa: F821

class Error(Exception): ...
class InvalidArgument(Error, ValueError): ...
class CheckpointError(Error, RuntimeError): ...
class BackendError(Error, RuntimeError): ...
class RuntimeFailure(Error, RuntimeError): ...

class LossKind(Enum):
    sigmoid = 0
    robust = 1
    ipo = 2
    hinge = 3
    sigmoid_norm = 4
    simpo = 5
    nca_pair = 6
    apo_zero = 7
    sppo_hard = 8

class Activation(Enum):
    relu = 0
    silu = 1

class RewardMode(Enum):
    add = 0
    weight = 1

class SelectionRule(Enum):
    top_k = 0
    softmax_sample = 1

class WeightScaling(Enum):
    per_selected = 0
    per_batch = 1

class Extreme(Enum):
    largest = 0
    smallest = 1

class LossConfig:
    kind: LossKind
    beta: float
    label_smoothing: float
    simpo_gamma: float
    length_normalize: bool
    def __init__(self, *, kind: Union[LossKind, str] = ..., beta: float = 0.1, label_smoothing: float = 0.0,
                 simpo_gamma: float = 0.5, length_normalize: bool = False) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def validate(self) -> None: ...

class NetworkConfig:
    hidden: int
    depth: int
    block_size: int
    explore_depth: int
    act: Activation
    dropout: float
    layer_norm_eps: float
    @property
    def feature_dim(self) -> int: ...
    def __init__(self, *, hidden: int = 256, depth: int = 4, block_size: int = 16, explore_depth: int = 4,
                 act: Union[Activation, str] = ..., dropout: float = 0.0, layer_norm_eps: float = 1e-6) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class OptimizerConfig:
    learning_rate: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    reset_each_update: bool
    exploit_steps: int
    explore_steps: int
    early_stop_mse: float
    def __init__(self, *, learning_rate: float = 1e-4, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 1e-5, reset_each_update: bool = False, exploit_steps: int = 4,
                 explore_steps: int = 4, early_stop_mse: float = 5e-5) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class RewardConfig:
    mode: RewardMode
    a: float
    b: float
    alpha: float
    smoothing: bool
    smoothing_lambda: float
    length_normalized_chosen: bool
    chosen_reward_term: bool
    reference_compat: bool
    def __init__(self, *, mode: Union[RewardMode, str] = ..., a: float = 50.0, b: float = 0.5, alpha: float = 0.5,
                 smoothing: bool = True, smoothing_lambda: float = 0.5, length_normalized_chosen: bool = False,
                 chosen_reward_term: bool = False, reference_compat: bool = False) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class PoolConfig:
    capacity_rows: int
    replay_batches: int
    def __init__(self, *, capacity_rows: int = 4096, replay_batches: int = 32) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class SelectionConfig:
    ratio: float
    rule: SelectionRule
    temperature: float
    explore_weight: float
    warmup_steps: int
    weights: WeightScaling
    def __init__(self, *, ratio: float = 0.5, rule: Union[SelectionRule, str] = ..., temperature: float = 1.0,
                 explore_weight: float = 0.01, warmup_steps: int = 0,
                 weights: Union[WeightScaling, str] = ...) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

LossLike = Union[LossConfig, Dict[str, Any], None]
SelectLike = Union[SelectionConfig, Dict[str, Any], None]

class SchedulerConfig:
    loss: LossConfig
    net: NetworkConfig
    opt: OptimizerConfig
    reward: RewardConfig
    pool: PoolConfig
    select: SelectionConfig
    def __init__(self, *, loss: LossLike = ..., net: Union[NetworkConfig, Dict[str, Any], None] = ...,
                 opt: Union[OptimizerConfig, Dict[str, Any], None] = ...,
                 reward: Union[RewardConfig, Dict[str, Any], None] = ...,
                 pool: Union[PoolConfig, Dict[str, Any], None] = ..., select: SelectLike = ...) -> None: ...
    @staticmethod
    def paper() -> SchedulerConfig: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def validate(self) -> None: ...

class Decision:
    @property
    def selected(self) -> npt.NDArray[np.int64]: ...
    @property
    def mask(self) -> npt.NDArray[np.bool_]: ...
    @property
    def weight(self) -> npt.NDArray[np.float32]: ...
    @property
    def loss(self) -> npt.NDArray[np.float32]: ...
    @property
    def d_policy_chosen(self) -> npt.NDArray[np.float32]: ...
    @property
    def d_policy_rejected(self) -> npt.NDArray[np.float32]: ...
    @property
    def score(self) -> npt.NDArray[np.float32]: ...
    @property
    def metrics(self) -> Dict[str, Union[int, float, bool]]: ...
    def tensors(self) -> Dict[str, Any]: ...

class _Stepper:
    def step(self, policy_chosen: ArrayLike, policy_rejected: ArrayLike, reference_chosen: Optional[ArrayLike] = None,
             reference_rejected: Optional[ArrayLike] = None, *, contexts: Optional[ArrayLike] = None,
             chosen_length: Optional[ArrayLike] = None, rejected_length: Optional[ArrayLike] = None,
             ids: Optional[ArrayLike] = None, sketches: Optional[ArrayLike] = None) -> Decision: ...
    def state_dict(self) -> bytes: ...
    def load_state_dict(self, state: bytes) -> None: ...
    @property
    def steps(self) -> int: ...
    def _last_inputs(self) -> Dict[str, Any]: ...

class Scheduler(_Stepper):
    def __init__(self, context_dim: int, seed: int = 0, config: Union[SchedulerConfig, Dict[str, Any], None] = None,
                 *, loss: LossLike = None, net: Union[NetworkConfig, Dict[str, Any], None] = None,
                 opt: Union[OptimizerConfig, Dict[str, Any], None] = None,
                 reward: Union[RewardConfig, Dict[str, Any], None] = None,
                 pool: Union[PoolConfig, Dict[str, Any], None] = None, select: SelectLike = None) -> None: ...
    @staticmethod
    def from_state_dict(state: bytes) -> Scheduler: ...
    @property
    def config(self) -> SchedulerConfig: ...
    @property
    def context_dim(self) -> int: ...
    @property
    def updates(self) -> int: ...
    @property
    def pool_size(self) -> int: ...

class _Baseline(_Stepper):
    @property
    def loss_config(self) -> LossConfig: ...
    @property
    def select_config(self) -> SelectionConfig: ...

class FullBatch(_Baseline):
    def __init__(self, *, loss: LossLike = None, select: SelectLike = None) -> None: ...

class UniformSelector(_Baseline):
    def __init__(self, seed: int = 0, *, loss: LossLike = None, select: SelectLike = None) -> None: ...

class LossSelector(_Baseline):
    def __init__(self, which: Union[Extreme, str, None] = None, *, loss: LossLike = None,
                 select: SelectLike = None) -> None: ...
    @property
    def which(self) -> Extreme: ...

class MarginSelector(_Baseline):
    def __init__(self, which: Union[Extreme, str, None] = None, *, loss: LossLike = None,
                 select: SelectLike = None) -> None: ...
    @property
    def which(self) -> Extreme: ...

class GuidedDrop(Enum):
    none = 0
    fixed_fraction = 1
    estimated = 2

class GuidedConfig:
    loss: LossConfig
    sketch_dim: int
    memory_capacity: int
    drop: GuidedDrop
    drop_fraction: float
    max_drop_fraction: float
    estimate_horizon: float
    estimate_confidence: float
    refresh_interval: int
    weights: WeightScaling
    def __init__(self, *, loss: LossLike = ..., sketch_dim: int = 0, memory_capacity: int = 1 << 20,
                 drop: Union[GuidedDrop, str] = ..., drop_fraction: float = 0.1, max_drop_fraction: float = 0.5,
                 estimate_horizon: float = 64.0, estimate_confidence: float = 1.0, refresh_interval: int = 1,
                 weights: Union[WeightScaling, str] = ...) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def validate(self) -> None: ...

class GuidedScheduler(_Stepper):
    def __init__(self, config: Union[GuidedConfig, Dict[str, Any], None] = None, **fields: Any) -> None: ...
    def set_trusted_direction(self, direction: ArrayLike, clean_agreement: Optional[float] = None) -> None: ...
    def set_trusted(self, policy_chosen: ArrayLike, policy_rejected: ArrayLike,
                    reference_chosen: Optional[ArrayLike] = None, reference_rejected: Optional[ArrayLike] = None, *,
                    sketches: ArrayLike, chosen_length: Optional[ArrayLike] = None,
                    rejected_length: Optional[ArrayLike] = None) -> None: ...
    def needs_trusted_refresh(self) -> bool: ...
    @staticmethod
    def from_state_dict(state: bytes) -> GuidedScheduler: ...
    @property
    def config(self) -> GuidedConfig: ...
    @property
    def sketch_dim(self) -> int: ...
    @property
    def noise(self) -> Dict[str, float]: ...
    @property
    def clean_agreement(self) -> float: ...
    @property
    def trusted_direction(self) -> npt.NDArray[np.float32]: ...
    @property
    def trusted_age(self) -> int: ...
    @property
    def last_agreement(self) -> npt.NDArray[np.float64]: ...
    @property
    def last_remembered(self) -> npt.NDArray[np.float64]: ...

class CountSketch:
    def __init__(self, width: int, seed: int) -> None: ...
    @property
    def width(self) -> int: ...
    @property
    def seed(self) -> int: ...
    def bucket(self, j: int) -> int: ...
    def sign(self, j: int) -> int: ...
    def accumulate(self, x: ArrayLike, out: npt.NDArray[Any], offset: int = 0) -> None: ...
    def apply(self, x: ArrayLike) -> npt.NDArray[np.float32]: ...

class DistributedMode(Enum):
    replicated = 0
    root_broadcast = 1

class DistributedScheduler:
    def __init__(self, scheduler: Scheduler, *, global_batch: int = 0, mode: Union[DistributedMode, str, None] = None,
                 root: int = 0, group: Any = None) -> None: ...
    def step(self, policy_chosen: ArrayLike, policy_rejected: ArrayLike, reference_chosen: Optional[ArrayLike] = None,
             reference_rejected: Optional[ArrayLike] = None, *, contexts: Optional[ArrayLike] = None,
             chosen_length: Optional[ArrayLike] = None, rejected_length: Optional[ArrayLike] = None,
             ids: Optional[ArrayLike] = None, sketches: Optional[ArrayLike] = None) -> Decision: ...
    def global_decision(self) -> Decision: ...
    def state_dict(self) -> bytes: ...
    def load_state_dict(self, state: bytes) -> None: ...
    @property
    def rank(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def global_size(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def last_payload_bytes(self) -> int: ...
