"""Configuration by keyword arguments: C++ defaults, C++ validation messages, type errors."""

import copy
import pickle

import pytest

import sams


def test_defaults_are_the_cpp_ones():
    # The values written in include/sams/scheduler/scheduler_config.hpp, nn/network_config.hpp,
    # reward/reward_config.hpp and loss/loss_config.hpp.
    c = sams.SchedulerConfig()
    assert c.loss.kind == sams.LossKind.sigmoid and c.loss.beta == 0.1 and c.loss.label_smoothing == 0.0
    assert (c.net.hidden, c.net.depth, c.net.block_size, c.net.explore_depth) == (256, 4, 16, 4)
    assert c.net.act == sams.Activation.relu and c.net.feature_dim == 256 * 2 // 16
    assert (c.opt.learning_rate, c.opt.weight_decay, c.opt.exploit_steps) == (1e-4, 1e-5, 4)
    assert (c.reward.a, c.reward.b, c.reward.alpha, c.reward.smoothing) == (50.0, 0.5, 0.5, True)
    assert (c.pool.capacity_rows, c.pool.replay_batches) == (4096, 32)
    assert c.select.ratio == 0.5 and c.select.rule == sams.SelectionRule.top_k
    assert c.select.weights == sams.WeightScaling.per_selected
    p = sams.SchedulerConfig.paper()
    assert (p.net.hidden, p.net.depth, p.pool.capacity_rows) == (4096, 16, 32 * 1024)


def test_keywords_dicts_strings_and_objects():
    c = sams.SchedulerConfig(loss={"kind": "ipo", "beta": 0.3}, select=sams.SelectionConfig(ratio=0.25))
    assert c.loss.kind == sams.LossKind.ipo and c.loss.beta == 0.3 and c.select.ratio == 0.25
    assert c.net == sams.NetworkConfig()  # untouched sections keep the defaults
    # A section dict given to Scheduler updates the config's section instead of resetting it.
    s = sams.Scheduler(4, config=c, select={"temperature": 2.0}, net={"hidden": 8, "depth": 3, "block_size": 4})
    assert s.config.select.ratio == 0.25 and s.config.select.temperature == 2.0
    assert s.config.loss.kind == sams.LossKind.ipo
    assert sams.SchedulerConfig(**c.to_dict()) == c
    assert pickle.loads(pickle.dumps(c)) == c and copy.deepcopy(c) == c
    assert "beta=0.3" in repr(c.loss)


def test_unknown_keyword_and_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="unexpected keyword 'betta'.*the fields are kind, beta"):
        sams.LossConfig(betta=0.1)
    with pytest.raises(TypeError, match="NetworkConfig.hidden: expected a non-negative integer"):
        sams.NetworkConfig(hidden=2.5)
    with pytest.raises(ValueError, match="NetworkConfig.hidden: must be a non-negative integer"):
        sams.NetworkConfig(hidden=-1)
    with pytest.raises(TypeError, match="RewardConfig.smoothing: expected a bool"):
        sams.RewardConfig(smoothing=1)
    with pytest.raises(ValueError, match="LossConfig.kind: unknown value 'dpo'"):
        sams.LossConfig(kind="dpo")
    with pytest.raises(TypeError, match="Scheduler\\(net=\\): expected NetworkConfig"):
        sams.Scheduler(4, net=3)


# The C++ messages name the field path and the rule; the rule's wording is the C++ code's, so
# it is matched by its key phrase (the full text is C++'s to change).
@pytest.mark.parametrize("sections, field, rule", [
    (dict(loss={"beta": 0.0}), "scheduler_config.loss.beta", "> 0, got 0.000000"),
    (dict(loss={"label_smoothing": 0.5}), "scheduler_config.loss.label_smoothing", "[0, 0.5), got 0.500000"),
    (dict(net={"depth": 2}), "scheduler_config.net.depth", ">= 3 (input layer, at least one residual block, output), got 2"),
    (dict(net={"block_size": 7}), "scheduler_config.net.block_size", "divide hidden*(depth-2) = 512, got 7"),
    (dict(net={"dropout": 1.0}), "scheduler_config.net.dropout", "[0, 1)"),
    (dict(opt={"learning_rate": 0.0}), "scheduler_config.opt.learning_rate", "in (0, 1]"),
    (dict(reward={"alpha": 2.0}), "scheduler_config.reward.alpha", "[0, 1]"),
    (dict(pool={"capacity_rows": 0}), "scheduler_config.pool.capacity_rows", "in [1, 4294967296], got 0"),
    (dict(select={"ratio": 0.0}), "scheduler_config.select.ratio", "(0, 1], got 0.000000"),
    (dict(select={"temperature": -1.0}), "scheduler_config.select.temperature", "in [1e-6, 1e6]"),
])
def test_invalid_values_raise_the_cpp_message(sections, field, rule):
    with pytest.raises(sams.InvalidArgument) as e:
        sams.Scheduler(4, **sections)
    message = str(e.value)
    assert message.startswith(field + ": must ") and rule in message, message
    assert isinstance(e.value, ValueError) and isinstance(e.value, sams.Error)
    # SchedulerConfig.validate() raises the same message without building a scheduler.
    with pytest.raises(sams.InvalidArgument) as e2:
        sams.SchedulerConfig(**sections).validate()
    assert str(e2.value) == message


def test_context_dim_and_baseline_configs_are_validated():
    with pytest.raises(sams.InvalidArgument, match="^sams_scheduler: context_dim: must be > 0$"):
        sams.Scheduler(0)
    with pytest.raises(sams.InvalidArgument, match="ratio.* must be in \\(0, 1\\], got 1.5"):
        sams.UniformSelector(0, select={"ratio": 1.5})
    with pytest.raises(sams.InvalidArgument, match="^loss_config.beta: must .*> 0, got -1.000000$"):
        sams.LossSelector(loss={"beta": -1.0})


def test_exception_hierarchy():
    assert issubclass(sams.InvalidArgument, sams.Error) and issubclass(sams.InvalidArgument, ValueError)
    for cls in (sams.CheckpointError, sams.BackendError, sams.RuntimeFailure):
        assert issubclass(cls, sams.Error) and issubclass(cls, RuntimeError)
        assert not issubclass(cls, ValueError)


def test_help_reads_well():
    text = sams.Scheduler.__doc__
    assert "context_dim" in text and "state_dict" in text
    assert "(default 0.1)" in sams.LossConfig.beta.__doc__
    assert "Returns a Decision" in sams.Scheduler.step.__doc__
    assert sams.Scheduler.__module__ == "sams"


def test_stubs_cover_the_public_api():
    import ast
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sams", "__init__.pyi")
    tree = ast.parse(open(path).read())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def members(name):
        node = classes[name]
        own = {b.name for b in node.body if isinstance(b, ast.FunctionDef)}
        own |= {b.target.id for b in node.body if isinstance(b, ast.AnnAssign)}
        own |= {t.id for b in node.body if isinstance(b, ast.Assign) for t in b.targets}
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                own |= members(base.id)
        return own

    for name in sams.__all__:
        obj = getattr(sams, name)
        if not isinstance(obj, type) or issubclass(obj, BaseException):
            continue
        assert name in classes, f"{name} missing from __init__.pyi"
        public = {m for m in vars(obj) if not m.startswith("_")} - {"name", "value"}
        if hasattr(obj, "__members__"):  # enums: their values
            public = set(obj.__members__)
        missing = public - members(name)
        assert not missing, f"{name}: {sorted(missing)} missing from __init__.pyi"
