// sams._sams: the Python binding (pybind11). Configuration structs as keyword-argument
// classes, the SamS scheduler and the baselines over float32 on the Eigen backend, decisions
// as numpy arrays that view the C++ buffers, checkpoints as bytes, C++ exceptions mapped to
// Python classes. docs/python.md describes the API; python/sams/__init__.pyi lists it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sams/sams.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace py = pybind11;

namespace {

using T = float;
using backend_t = sams::eigen_backend<T>;
using scheduler_t = sams::sams_scheduler<backend_t>;

// ---- exceptions --------------------------------------------------------------------------

// Set at module init; the translator raises these with the C++ message.
py::handle g_error, g_invalid_argument, g_checkpoint_error, g_backend_error,
    g_runtime_error;  // leaked on purpose: no DECREF after interpreter shutdown

[[noreturn]] void throw_invalid(const std::string& msg) { throw sams::invalid_argument(msg); }

// ---- configuration classes ---------------------------------------------------------------

// One row per field: how to read, write and describe it. The same table drives the keyword
// constructor, attribute access, repr, equality, to_dict and pickling, so they cannot drift.
template <class C>
struct field_table {
    struct field {
        std::string name;
        std::function<py::object(const C&)> get;
        std::function<void(C&, py::handle)> set;
        std::string doc;
    };
    const char* class_name = "";
    std::vector<field> fields;

    const field* find(const std::string& name) const {
        for (const auto& f : fields)
            if (f.name == name) return &f;
        return nullptr;
    }
    std::string names() const {
        std::string s;
        for (const auto& f : fields) s += (s.empty() ? "" : ", ") + f.name;
        return s;
    }
    void apply(C& c, const py::dict& kw) const {
        for (const auto& [k, v] : kw) {
            const std::string key = py::cast<std::string>(k);
            const field* f = find(key);
            if (f == nullptr)
                throw py::type_error(std::string(class_name) + ": unexpected keyword '" + key +
                                     "'; the fields are " + names());
            f->set(c, v);
        }
    }
    py::dict to_dict(const C& c) const {
        py::dict d;
        for (const auto& f : fields) d[py::str(f.name)] = f.get(c);
        return d;
    }
};

template <class C>
field_table<C>& table() {
    static field_table<C> t;
    return t;
}

std::string py_repr(py::handle v) { return py::cast<std::string>(py::repr(v)); }

// repr, except enums print as LossKind.sigmoid.
std::string value_text(py::handle v) {
    if (py::hasattr(py::type::of(v), "__members__")) return py::cast<std::string>(py::str(v));
    return py_repr(v);
}

// Converts one keyword value to the field's C++ type; a type mismatch is a TypeError naming
// the field (range checks are the C++ validate()'s, with its messages).
template <class F>
F convert_field(py::handle v, const char* cls, const std::string& name) {
    if constexpr (std::is_enum_v<F>) {
        if (py::isinstance<py::str>(v)) {
            const py::object enum_type = py::type::of<F>();
            const py::dict members = enum_type.attr("__members__");
            const std::string s = py::cast<std::string>(v);
            if (!members.contains(s))
                throw py::value_error(std::string(cls) + "." + name + ": unknown value '" + s +
                                      "'; expected one of " + py_repr(py::list(members.attr("keys")())));
            return py::cast<F>(members[py::str(s)]);
        }
    }
    if constexpr (std::is_same_v<F, bool>) {
        // Only real booleans (and numpy.bool_): 0/1 or strings are more likely a mistake.
        if (!py::isinstance<py::bool_>(v) &&
            std::string(py::str(py::type::of(v).attr("__name__"))) != "bool_")
            throw py::type_error(std::string(cls) + "." + name + ": expected a bool, got " + py_repr(v));
    }
    if constexpr (std::is_same_v<F, std::size_t>) {
        if (py::isinstance<py::bool_>(v) || !py::hasattr(v, "__index__"))
            throw py::type_error(std::string(cls) + "." + name + ": expected a non-negative integer, got " +
                                 py_repr(v));
        const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
        if (py::cast<long long>(i) < 0)
            throw py::value_error(std::string(cls) + "." + name + ": must be a non-negative integer, got " +
                                  py_repr(v));
    }
    try {
        return py::cast<F>(v);
    } catch (const py::cast_error&) {
        throw py::type_error(std::string(cls) + "." + name + ": cannot use " + py_repr(v) + " (of type " +
                             std::string(py::str(py::type::of(v).attr("__name__"))) + ")");
    }
}

template <class C, class F>
void add_field(py::class_<C>& cls, const char* name, F C::*member, const char* doc) {
    auto& t = table<C>();
    const char* cname = t.class_name;
    const std::string n = name;
    const C defaults{};
    const std::string full_doc =
        std::string(doc) + " (default " + value_text(py::cast(defaults.*member)) + ")";
    t.fields.push_back({n, [member](const C& c) { return py::cast(c.*member); },
                        [member, cname, n](C& c, py::handle v) { c.*member = convert_field<F>(v, cname, n); },
                        full_doc});
    cls.def_property(
        name, [member](const C& c) { return c.*member; },
        [member, cname, n](C& c, py::handle v) { c.*member = convert_field<F>(v, cname, n); },
        full_doc.c_str());
}

// Keyword constructor, repr, ==, to_dict, copy and pickling for a config class; the class
// docstring gains the signature and the field list with the C++ defaults.
template <class C>
void finish_config(py::class_<C>& cls) {
    {
        const auto& t = table<C>();
        std::string sig = std::string(t.class_name) + "(*";
        std::string fields;
        for (const auto& f : t.fields) {
            sig += ", " + f.name;
            fields += "\n    " + f.name + ": " + f.doc;
        }
        const std::string old = py::cast<std::string>(cls.attr("__doc__"));
        cls.attr("__doc__") =
            sig + ")\n\n" + old +
            "\nEvery field is a keyword argument; omitted ones keep the C++ default.\n\nFields:" + fields;
    }
    cls.def(py::init([](const py::kwargs& kw) {
                C c{};
                table<C>().apply(c, kw);
                return c;
            }),
            "Every field is a keyword argument; omitted fields keep the C++ defaults.");
    cls.def(
        "to_dict", [](const C& c) { return table<C>().to_dict(c); },
        "The fields as a dict (nested configs as dicts), accepted back by the constructor.");
    cls.def("__repr__", [](const C& c) {
        std::string s = std::string(table<C>().class_name) + "(";
        bool first = true;
        for (const auto& f : table<C>().fields) {
            s += (first ? "" : ", ") + f.name + "=" + value_text(f.get(c));
            first = false;
        }
        return s + ")";
    });
    cls.def(
        "__eq__", [](const C& a, const C& b) { return a == b; }, py::is_operator());
    cls.def("__copy__", [](const C& c) { return c; });
    cls.def("__deepcopy__", [](const C& c, py::handle) { return c; });
    cls.def(py::pickle([](const C& c) { return table<C>().to_dict(c); },
                       [](const py::dict& d) {
                           C c{};
                           table<C>().apply(c, d);
                           return c;
                       }));
}

// A nested config given as an instance, a dict of its fields, or None (defaults).
template <class C>
C as_config(py::handle v, const char* what) {
    if (v.is_none()) return C{};
    if (py::isinstance<C>(v)) return py::cast<C>(v);
    if (py::isinstance<py::dict>(v)) {
        C c{};
        table<C>().apply(c, py::reinterpret_borrow<py::dict>(v));
        return c;
    }
    throw py::type_error(std::string(what) + ": expected " + table<C>().class_name +
                         ", a dict of its fields or None, got " + py_repr(v));
}

// Like as_config, but a dict updates `base` instead of the defaults.
template <class C>
C merge_config(const C& base, py::handle v, const char* what) {
    if (v.is_none()) return base;
    if (py::isinstance<py::dict>(v)) {
        C c = base;
        table<C>().apply(c, py::reinterpret_borrow<py::dict>(v));
        return c;
    }
    return as_config<C>(v, what);
}

template <class C, class Sub>
void add_section(py::class_<C>& cls, const char* name, Sub C::*member, const char* doc) {
    auto& t = table<C>();
    const std::string n = name;
    const std::string where = std::string(t.class_name) + "." + n;
    t.fields.push_back({n, [member](const C& c) { return py::object(table<Sub>().to_dict(c.*member)); },
                        [member, where](C& c, py::handle v) { c.*member = as_config<Sub>(v, where.c_str()); },
                        std::string(doc) + " or a dict of its fields (default: its defaults)"});
    cls.def_property(
        name, [member](const C& c) { return c.*member; },
        [member, where](C& c, py::handle v) { c.*member = as_config<Sub>(v, where.c_str()); }, doc);
}

// ---- input arrays ------------------------------------------------------------------------

// One converted input: the array C++ reads (the caller's own memory when zero-copy was
// possible, else a float32 copy) and whether it was copied.
struct input_array {
    py::array array;  // keeps the memory alive while the step runs without the GIL
    bool copied = false;
};

bool is_torch_tensor(py::handle x) {
    const py::handle type = py::type::of(x);
    if (!py::hasattr(type, "__module__")) return false;
    const std::string mod = py::str(type.attr("__module__"));
    return mod.rfind("torch", 0) == 0 && py::hasattr(x, "data_ptr") && py::hasattr(x, "numpy");
}

// A torch tensor becomes a numpy array over the same memory where numpy has its dtype
// (float32, float64, int...); bfloat16 and float16 are converted to float32 once here.
py::object unwrap_tensor(py::handle x, const char* name, bool& converted) {
    const std::string device = py::str(x.attr("device").attr("type"));
    if (device != "cpu")
        throw_invalid(std::string("sams step: ") + name + " is a torch tensor on '" + device +
                      "'; move it to the CPU (.cpu()) before the step");
    py::object t = x.attr("detach")();
    const std::string dtype = py::str(t.attr("dtype"));
    if (dtype == "torch.bfloat16" || dtype == "torch.float16") {
        const py::object torch = py::module_::import("torch");
        t = t.attr("to")(torch.attr("float32"));
        converted = true;
    }
    return t.attr("numpy")();
}

std::string shape_text(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// The float32 view C++ reads: zero-copy for float32 with unit element stride (rows may be
// strided for matrices), else one conversion to a C-contiguous float32 array.
input_array as_float_input(py::handle x, const char* name, int ndim) {
    bool converted = false;
    py::object obj =
        is_torch_tensor(x) ? unwrap_tensor(x, name, converted) : py::reinterpret_borrow<py::object>(x);
    if (!py::isinstance<py::array>(obj)) {
        converted = true;
        try {
            obj = py::module_::import("numpy").attr("asarray")(obj);
        } catch (const py::error_already_set&) {
            throw_invalid(std::string("sams step: ") + name +
                          " must be a numpy array, a torch tensor or a sequence of numbers");
        }
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
        throw_invalid(std::string("sams step: ") + name + " must hold real numbers, got dtype " +
                      std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw_invalid(std::string("sams step: ") + name + " must be " + std::to_string(ndim) +
                      "-D, got shape " + shape_text(a));
    const bool is_f32 = a.dtype().is(py::dtype::of<float>());
    bool zero_copy = is_f32;
    if (zero_copy) {
        const auto es = static_cast<py::ssize_t>(sizeof(T));
        if (ndim == 1)
            zero_copy = a.shape(0) <= 1 || a.strides(0) == es;
        else
            zero_copy = (a.shape(1) <= 1 || a.strides(1) == es) && a.strides(0) >= 0 &&
                        a.strides(0) % es == 0 && (a.shape(0) <= 1 || a.strides(0) >= a.shape(1) * es);
    }
    if (zero_copy) return {a, converted};
    return {py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a), true};
}

input_array as_id_input(py::handle x) {
    bool converted = false;
    py::object obj =
        is_torch_tensor(x) ? unwrap_tensor(x, "ids", converted) : py::reinterpret_borrow<py::object>(x);
    converted = converted || !py::isinstance<py::array>(obj);
    py::array a = py::module_::import("numpy").attr("asarray")(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
        throw_invalid("sams step: ids must hold integers, got dtype " + std::string(py::str(a.dtype())));
    if (a.ndim() != 1) throw_invalid("sams step: ids must be 1-D, got shape " + shape_text(a));
    if (a.dtype().is(py::dtype::of<std::int64_t>()) && (a.shape(0) <= 1 || a.strides(0) == 8))
        return {a, converted};
    return {py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a), true};
}

// Everything one step reads, converted while the GIL is held; the pair_batch views it.
struct batch_inputs {
    static constexpr std::array<const char*, 9> names{
        "policy_chosen", "policy_rejected", "reference_chosen", "reference_rejected",
        "chosen_length", "rejected_length", "contexts",         "ids",
        "sketches"};
    std::array<std::optional<input_array>, 9> in;
    sams::pair_batch<T> batch;

    std::span<const T> span_of(std::size_t i) const {
        if (!in[i]) return {};
        const py::array& a = in[i]->array;
        return {static_cast<const T*>(a.data()), static_cast<std::size_t>(a.shape(0))};
    }
    sams::matrix_view<const T> matrix_of(std::size_t i) const {
        if (!in[i]) return {};
        const py::array& a = in[i]->array;
        const auto rows = static_cast<std::size_t>(a.shape(0)), cols = static_cast<std::size_t>(a.shape(1));
        const std::size_t stride = rows <= 1 ? cols : static_cast<std::size_t>(a.strides(0)) / sizeof(T);
        return {static_cast<const T*>(a.data()), rows, cols, stride};
    }

    batch_inputs(py::handle pc, py::handle pr, py::handle rc, py::handle rr, py::handle cl, py::handle rl,
                 py::handle ctx, py::handle ids, py::handle sk) {
        const std::array<py::handle, 9> h{pc, pr, rc, rr, cl, rl, ctx, ids, sk};
        for (std::size_t i = 0; i < 9; ++i) {
            if (h[i].is_none()) continue;
            if (i == 7)
                in[i] = as_id_input(h[i]);
            else
                in[i] = as_float_input(h[i], names[i], (i == 6 || i == 8) ? 2 : 1);
        }
        batch.policy_chosen = span_of(0);
        batch.policy_rejected = span_of(1);
        batch.reference_chosen = span_of(2);
        batch.reference_rejected = span_of(3);
        batch.chosen_length = span_of(4);
        batch.rejected_length = span_of(5);
        batch.contexts = matrix_of(6);
        if (in[7]) {
            const py::array& a = in[7]->array;
            batch.ids = {static_cast<const std::int64_t*>(a.data()), static_cast<std::size_t>(a.shape(0))};
        }
        batch.sketches = matrix_of(8);
    }

    // What the C++ step saw: the data address of every input and whether it was a copy.
    py::dict report() const {
        py::dict d;
        for (std::size_t i = 0; i < 9; ++i) {
            if (!in[i]) continue;
            d[py::str(names[i])] =
                py::make_tuple(reinterpret_cast<std::uintptr_t>(in[i]->array.data()), in[i]->copied);
        }
        return d;
    }
};

// ---- decisions ---------------------------------------------------------------------------

struct py_decision {
    sams::decision<T> d;
};

py::dict metrics_dict(const sams::step_metrics& m) {
    py::dict d;
    d["step"] = m.step;
    d["batch_loss"] = m.batch_loss;
    d["selected_loss"] = m.selected_loss;
    d["progress"] = m.progress;
    d["progress_delta"] = m.progress_delta;
    d["reward_accuracy"] = m.reward_accuracy;
    d["mean_margin"] = m.mean_margin;
    d["chosen_reward"] = m.chosen_reward;
    d["rejected_reward"] = m.rejected_reward;
    d["exploit_mse"] = m.exploit_mse;
    d["explore_mse"] = m.explore_mse;
    d["mean_target"] = m.mean_target;
    d["score_spread"] = m.score_spread;
    d["selection_entropy"] = m.selection_entropy;
    d["pool_size"] = m.pool_size;
    d["pool_capacity"] = m.pool_capacity;
    d["trained_rows"] = m.trained_rows;
    d["warmup"] = m.warmup;
    d["estimated_noise"] = m.estimated_noise;
    d["mean_agreement"] = m.mean_agreement;
    d["dropped"] = m.dropped;
    return d;
}

// A numpy array over a vector owned by the Decision object `self` (no copy).
template <class V, class E>
py::array view_of(const std::vector<E>& v, py::handle self) {
    static_assert(sizeof(V) == sizeof(E));
    return py::array(py::dtype::of<V>(), {static_cast<py::ssize_t>(v.size())},
                     {static_cast<py::ssize_t>(sizeof(E))}, reinterpret_cast<const V*>(v.data()), self);
}

// ---- the schedulers ----------------------------------------------------------------------

// Calls f() without the GIL and under the scheduler's mutex: the GIL goes first so a thread
// waiting for the mutex never holds it while the running step needs it back.
template <class Mutex, class F>
auto unlocked(Mutex& mu, F&& f) {
    py::gil_scoped_release release;
    std::lock_guard<Mutex> lock(mu);
    return f();
}

struct py_sams_scheduler {
    std::optional<scheduler_t> s;
    std::mutex mu;
    py::object last_inputs = py::none();
};

sams::scheduler_config build_config(py::handle config, py::handle loss, py::handle net, py::handle opt,
                                    py::handle reward, py::handle pool, py::handle select) {
    sams::scheduler_config c = as_config<sams::scheduler_config>(config, "Scheduler(config=)");
    c.loss = merge_config(c.loss, loss, "Scheduler(loss=)");
    c.net = merge_config(c.net, net, "Scheduler(net=)");
    c.opt = merge_config(c.opt, opt, "Scheduler(opt=)");
    c.reward = merge_config(c.reward, reward, "Scheduler(reward=)");
    c.pool = merge_config(c.pool, pool, "Scheduler(pool=)");
    c.select = merge_config(c.select, select, "Scheduler(select=)");
    return c;
}

py::bytes to_bytes(const std::vector<std::uint8_t>& v) {
    return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}
std::vector<std::uint8_t> from_bytes(const py::bytes& b) {
    const std::string_view s = b;
    return {reinterpret_cast<const std::uint8_t*>(s.data()),
            reinterpret_cast<const std::uint8_t*>(s.data()) + s.size()};
}

// Restores `target` from checkpoint bytes with the C++ restore()'s rules: same configuration
// and context width, or sams::checkpoint_error and no change.
void restore_from_bytes(scheduler_t& target, const std::vector<std::uint8_t>& bytes) {
    scheduler_t loaded = scheduler_t::deserialize(bytes);
    const std::string diff = sams::detail::first_config_difference(target.config(), loaded.config());
    if (!diff.empty())
        throw sams::checkpoint_error("checkpoint: written with a different configuration (field " + diff +
                                     " differs)");
    if (loaded.context_dim() != target.context_dim())
        throw sams::checkpoint_error("checkpoint: context_dim is " + std::to_string(loaded.context_dim()) +
                                     ", this scheduler has " + std::to_string(target.context_dim()));
    target = std::move(loaded);
}

// The baselines share one wrapper: the C++ object, its kind, and what their checkpoint needs.
enum class baseline_kind : std::uint32_t { full_batch = 0, uniform = 1, loss = 2, margin = 3 };

struct py_baseline {
    baseline_kind kind{};
    sams::loss_config loss{};
    sams::selection_config select{};
    sams::extreme which = sams::extreme::largest;
    std::uint64_t seed = 0;
    // The C++ baselines count their own steps from zero; a restored one continues from here.
    std::uint64_t step_offset = 0;
    std::variant<std::monostate, sams::full_batch<T>, sams::uniform_selector<T>, sams::loss_selector<T>,
                 sams::margin_selector<T>>
        impl;
    std::mutex mu;
    py::object last_inputs = py::none();

    void build() {
        switch (kind) {
            case baseline_kind::full_batch:
                impl.emplace<sams::full_batch<T>>(loss, select);
                break;
            case baseline_kind::uniform:
                impl.emplace<sams::uniform_selector<T>>(loss, select, seed);
                break;
            case baseline_kind::loss:
                impl.emplace<sams::loss_selector<T>>(loss, select, which);
                break;
            case baseline_kind::margin:
                impl.emplace<sams::margin_selector<T>>(loss, select, which);
                break;
        }
    }
    std::uint64_t steps() const {
        return step_offset + std::visit(
                                 [](const auto& b) -> std::uint64_t {
                                     if constexpr (std::is_same_v<std::decay_t<decltype(b)>, std::monostate>)
                                         return 0;
                                     else
                                         return b.steps();
                                 },
                                 impl);
    }
    void step(const sams::pair_batch<T>& batch, sams::decision<T>& out) {
        std::visit(
            [&](auto& b) {
                if constexpr (!std::is_same_v<std::decay_t<decltype(b)>, std::monostate>) b.step(batch, out);
            },
            impl);
        out.metrics.step += static_cast<std::size_t>(step_offset);
    }

    std::vector<std::uint8_t> serialize() const {
        sams::detail::byte_writer w;
        w.put_tag("sams.baseline");
        w.put<std::uint32_t>(static_cast<std::uint32_t>(kind));
        sams::scheduler_config c{};
        c.loss = loss;
        c.select = select;
        sams::detail::write_config(w, c);
        w.put<std::int32_t>(static_cast<std::int32_t>(which));
        w.put<std::uint64_t>(seed);
        w.put<std::uint64_t>(steps());
        if (const auto* u = std::get_if<sams::uniform_selector<T>>(&impl))
            sams::detail::write_rng(w, u->generator());
        return sams::detail::frame_checkpoint(w.bytes());
    }

    // Reads serialize()'s bytes into `b`, a fresh baseline (checkpoint_error on any problem).
    static void deserialize_into(py_baseline& b, const std::vector<std::uint8_t>& bytes) {
        sams::detail::byte_reader r(sams::detail::unframe_checkpoint(bytes));
        r.expect_tag("sams.baseline");
        const auto k = r.get<std::uint32_t>("baseline kind");
        if (k > 3) throw sams::checkpoint_error("checkpoint: unknown baseline kind " + std::to_string(k));
        b.kind = static_cast<baseline_kind>(k);
        const sams::scheduler_config c = sams::detail::read_config(r);
        b.loss = c.loss;
        b.select = c.select;
        const auto w = r.get<std::int32_t>("extreme");
        if (w < 0 || w > 1) throw sams::checkpoint_error("checkpoint: unknown extreme " + std::to_string(w));
        b.which = static_cast<sams::extreme>(w);
        b.seed = r.get<std::uint64_t>("seed");
        b.step_offset = r.get<std::uint64_t>("step count");
        b.build();
        if (auto* u = std::get_if<sams::uniform_selector<T>>(&b.impl))
            sams::detail::read_rng(r, u->generator(), "selection rng");
        if (!r.at_end()) throw sams::checkpoint_error("checkpoint: trailing bytes after the last section");
    }
};

// One C++ type per Python class (pybind11 binds a type once).
template <baseline_kind K>
struct py_baseline_of : py_baseline {};

using guided_t = sams::guided_scheduler<T>;

struct py_guided {
    std::optional<guided_t> s;
    std::mutex mu;
    py::object last_inputs = py::none();
};

// Names the first guided_config field where a and b differ (empty when equal).
std::string guided_difference(const sams::guided_config& a, const sams::guided_config& b) {
    const auto& t = table<sams::guided_config>();
    for (const auto& f : t.fields)
        if (!f.get(a).equal(f.get(b))) return f.name;
    return {};
}

py::array copy_doubles(std::span<const double> v) {
    py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

// A sams::communicator over torch.distributed, called from C++ with the GIL taken back for
// each collective: byte buffers travel as uint8 CPU tensors (padded to the largest count for
// the variable-size gathers), doubles as float64 tensors.
class torch_communicator {
public:
    torch_communicator(py::object group) : group_(std::move(group)) {
        dist_ = py::module_::import("torch.distributed");
        torch_ = py::module_::import("torch");
        if (!py::cast<bool>(dist_.attr("is_initialized")()))
            throw_invalid(
                "sams.DistributedScheduler: torch.distributed is not initialised (call init_process_group "
                "first)");
        rank_ = py::cast<int>(dist_.attr("get_rank")(group_));
        size_ = py::cast<int>(dist_.attr("get_world_size")(group_));
    }
    torch_communicator(torch_communicator&&) noexcept = default;
    torch_communicator& operator=(torch_communicator&&) noexcept = default;

    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int size() const noexcept { return size_; }

    void all_gather(std::span<const std::byte> send, std::span<std::byte> recv,
                    std::span<const std::size_t> counts) {
        sams::detail::check_gather_args(send.size(), recv.size(), counts, rank_, size_, true,
                                        "torch_communicator::all_gather");
        gather_into(send, recv, counts);
    }
    void gather(std::span<const std::byte> send, std::span<std::byte> recv,
                std::span<const std::size_t> counts, int root) {
        sams::detail::check_root(root, size_, "torch_communicator::gather");
        sams::detail::check_gather_args(send.size(), recv.size(), counts, rank_, size_, rank_ == root,
                                        "torch_communicator::gather");
        // An all-gather that only the root keeps: gloo's gather needs equal sizes as well.
        std::size_t total = 0;
        for (const std::size_t n : counts) total += n;
        std::vector<std::byte> all(total);
        gather_into(send, all, counts);
        if (rank_ == root && total > 0) std::memcpy(recv.data(), all.data(), total);
    }
    void broadcast(std::span<std::byte> buffer, int root) {
        sams::detail::check_root(root, size_, "torch_communicator::broadcast");
        py::gil_scoped_acquire gil;
        py::object t = torch_.attr("zeros")(std::max<std::size_t>(buffer.size(), 1),
                                            py::arg("dtype") = torch_.attr("uint8"));
        if (!buffer.empty()) std::memcpy(ptr(t), buffer.data(), buffer.size());
        dist_.attr("broadcast")(t, root, py::arg("group") = group_);
        if (!buffer.empty()) std::memcpy(buffer.data(), ptr(t), buffer.size());
    }
    void all_reduce(std::span<double> values, sams::reduce_op op) {
        py::gil_scoped_acquire gil;
        if (values.empty()) return;
        py::object t = torch_.attr("zeros")(values.size(), py::arg("dtype") = torch_.attr("float64"));
        std::memcpy(ptr(t), values.data(), values.size_bytes());
        const py::object ops = dist_.attr("ReduceOp");
        const py::object o = op == sams::reduce_op::sum   ? ops.attr("SUM")
                             : op == sams::reduce_op::min ? ops.attr("MIN")
                                                          : ops.attr("MAX");
        dist_.attr("all_reduce")(t, py::arg("op") = o, py::arg("group") = group_);
        std::memcpy(values.data(), ptr(t), values.size_bytes());
    }

private:
    static void* ptr(const py::object& t) {
        return reinterpret_cast<void*>(py::cast<std::uintptr_t>(t.attr("data_ptr")()));
    }
    void gather_into(std::span<const std::byte> send, std::span<std::byte> recv,
                     std::span<const std::size_t> counts) {
        py::gil_scoped_acquire gil;
        std::size_t largest = 1;
        for (const std::size_t n : counts) largest = std::max(largest, n);
        py::object t = torch_.attr("zeros")(largest, py::arg("dtype") = torch_.attr("uint8"));
        if (!send.empty()) std::memcpy(ptr(t), send.data(), send.size());
        py::list parts;
        for (int r = 0; r < size_; ++r) parts.append(torch_.attr("empty_like")(t));
        dist_.attr("all_gather")(parts, t, py::arg("group") = group_);
        std::size_t off = 0;
        for (int r = 0; r < size_; ++r) {
            const std::size_t n = counts[static_cast<std::size_t>(r)];
            if (n > 0) std::memcpy(recv.data() + off, ptr(parts[static_cast<std::size_t>(r)]), n);
            off += n;
        }
    }

    py::object dist_, torch_, group_;
    int rank_ = 0, size_ = 1;
};
static_assert(sams::communicator<torch_communicator>);

using distributed_t = sams::distributed_scheduler<T, scheduler_t, torch_communicator>;

struct py_distributed {
    std::optional<distributed_t> s;
    std::mutex mu;
};

const char* baseline_class_name(baseline_kind k) {
    switch (k) {
        case baseline_kind::full_batch:
            return "FullBatch";
        case baseline_kind::uniform:
            return "UniformSelector";
        case baseline_kind::loss:
            return "LossSelector";
        case baseline_kind::margin:
            return "MarginSelector";
    }
    return "?";
}

sams::extreme parse_extreme(py::handle v, sams::extreme fallback) {
    if (v.is_none()) return fallback;
    return convert_field<sams::extreme>(v, "selector", "which");
}

// step()'s Python signature, shared by every scheduler class.
#define SAMS_STEP_ARGS                                                                                       \
    py::arg("policy_chosen"), py::arg("policy_rejected"),                                                    \
        py::arg("reference_chosen") = py::none(), py::arg("reference_rejected") = py::none(), py::kw_only(), \
        py::arg("contexts") = py::none(), py::arg("chosen_length") = py::none(),                             \
        py::arg("rejected_length") = py::none(), py::arg("ids") = py::none(),                                \
        py::arg("sketches") = py::none()

constexpr const char* step_doc = R"doc(Scores one batch of B preference pairs and chooses which to train on.

Arguments are numpy arrays or CPU torch tensors (gradients are not tracked: pass the
tensors themselves, the binding detaches them):

    policy_chosen, policy_rejected      (B,)  summed policy log-probs a_w, a_l
    reference_chosen, reference_rejected (B,) reference log-probs r_w, r_l (None for SimPO)
    contexts                            (B, D) arm contexts (required by Scheduler)
    chosen_length, rejected_length      (B,)  response lengths (length-normalised losses)
    ids                                 (B,)  integer dataset indices (optional)
    sketches                            (B, k) per-pair gradient sketches (guided selection)

float32 inputs with unit element stride are read in place (contexts may have strided rows);
any other dtype (float64, bfloat16, float16, integers) or layout is converted to float32
once. The GIL is released while the C++ step runs. Bad input raises sams.InvalidArgument
with the C++ message and changes no state.

Returns a Decision: selected, mask, weight, loss, d_policy_chosen, d_policy_rejected,
score (numpy arrays) and metrics (a dict).)doc";

}  // namespace

PYBIND11_MODULE(_sams, m) {
    m.doc() = "sams: SamS adaptive sample scheduling for DPO (C++ core, float32, CPU Eigen backend)";
    m.attr("__version__") = std::to_string(SAMS_VERSION_MAJOR) + "." + std::to_string(SAMS_VERSION_MINOR) +
                            "." + std::to_string(SAMS_VERSION_PATCH);

    // Exceptions: sams.Error, and subclasses that are also ValueError / RuntimeError.
    const py::object builtins = py::module_::import("builtins");
    const py::object type = builtins.attr("type");
    auto make_exc = [&](const char* name, py::tuple bases, const char* doc) {
        py::dict ns;
        ns["__doc__"] = doc;
        ns["__module__"] = "sams";
        py::object cls = type(name, bases, ns);
        m.attr(name) = cls;
        return cls.release();
    };
    g_error = make_exc("Error", py::make_tuple(builtins.attr("Exception")),
                       "Base of every exception the sams library raises (sams::error in C++).");
    g_invalid_argument = make_exc("InvalidArgument", py::make_tuple(g_error, builtins.attr("ValueError")),
                                  "An argument had the wrong shape, range or value (sams::invalid_argument). "
                                  "The call that raised changed no state.");
    g_checkpoint_error =
        make_exc("CheckpointError", py::make_tuple(g_error, builtins.attr("RuntimeError")),
                 "A checkpoint could not be read: bad magic, version, checksum, truncation or a "
                 "configuration that does not match (sams::checkpoint_error).");
    g_backend_error = make_exc("BackendError", py::make_tuple(g_error, builtins.attr("RuntimeError")),
                               "A compute backend reported a failure (sams::backend_error).");
    // A bare sams::error (no subclass) is a RuntimeError too.
    g_runtime_error = make_exc("RuntimeFailure", py::make_tuple(g_error, builtins.attr("RuntimeError")),
                               "Any other sams::error.");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const sams::invalid_argument& e) {
            PyErr_SetString(g_invalid_argument.ptr(), e.what());
        } catch (const sams::checkpoint_error& e) {
            PyErr_SetString(g_checkpoint_error.ptr(), e.what());
        } catch (const sams::backend_error& e) {
            PyErr_SetString(g_backend_error.ptr(), e.what());
        } catch (const sams::error& e) {
            PyErr_SetString(g_runtime_error.ptr(), e.what());
        }
    });

    // Enums: attribute style (sams.LossKind.sigmoid) or the name as a string in configs.
    py::enum_<sams::loss_kind>(m, "LossKind", "Member of the preference-loss family (docs/losses.md).")
        .value("sigmoid", sams::loss_kind::sigmoid)
        .value("robust", sams::loss_kind::robust)
        .value("ipo", sams::loss_kind::ipo)
        .value("hinge", sams::loss_kind::hinge)
        .value("sigmoid_norm", sams::loss_kind::sigmoid_norm)
        .value("simpo", sams::loss_kind::simpo)
        .value("nca_pair", sams::loss_kind::nca_pair)
        .value("apo_zero", sams::loss_kind::apo_zero)
        .value("sppo_hard", sams::loss_kind::sppo_hard);
    py::enum_<sams::activation>(m, "Activation", "Activation of the scheduler nets.")
        .value("relu", sams::activation::relu)
        .value("silu", sams::activation::silu);
    py::enum_<sams::reward_mode>(m, "RewardMode",
                                 "How the lagged reward combines progress and the sample term.")
        .value("add", sams::reward_mode::add)
        .value("weight", sams::reward_mode::weight);
    py::enum_<sams::selection_rule>(m, "SelectionRule", "How K pairs are chosen from the scores.")
        .value("top_k", sams::selection_rule::top_k)
        .value("softmax_sample", sams::selection_rule::softmax_sample);
    py::enum_<sams::weight_scaling>(m, "WeightScaling", "Loss weight of a selected pair: 1/K or 1/B.")
        .value("per_selected", sams::weight_scaling::per_selected)
        .value("per_batch", sams::weight_scaling::per_batch);
    py::enum_<sams::extreme>(m, "Extreme", "Which end of a ranking a heuristic selector keeps.")
        .value("largest", sams::extreme::largest)
        .value("smallest", sams::extreme::smallest);

    // Config classes. The defaults shown by help() are read from the C++ structs.
    {
        table<sams::loss_config>().class_name = "LossConfig";
        py::class_<sams::loss_config> c(
            m, "LossConfig", "The preference loss: which member of the family and its parameters.");
        add_field(c, "kind", &sams::loss_config::kind, "LossKind or its name");
        add_field(c, "beta", &sams::loss_config::beta, "beta > 0");
        add_field(c, "label_smoothing", &sams::loss_config::label_smoothing,
                  "epsilon in [0, 0.5): cDPO smoothing, or the assumed flip rate of 'robust'");
        add_field(c, "simpo_gamma", &sams::loss_config::simpo_gamma, "SimPO's target reward margin");
        add_field(c, "length_normalize", &sams::loss_config::length_normalize,
                  "IPO only: length-normalised h");
        finish_config(c);
        c.def(
            "validate", [](const sams::loss_config& x) { x.validate(); },
            "Raises sams.InvalidArgument naming the first bad field.");
    }
    {
        table<sams::network_config>().class_name = "NetworkConfig";
        py::class_<sams::network_config> c(m, "NetworkConfig",
                                           "The exploitation net f1 and exploration net f2.");
        add_field(c, "hidden", &sams::network_config::hidden, "H, width of f1");
        add_field(c, "depth", &sams::network_config::depth, "N >= 3 layers of f1");
        add_field(c, "block_size", &sams::network_config::block_size,
                  "s: phi is the block mean of f1's hidden activations");
        add_field(c, "explore_depth", &sams::network_config::explore_depth, "N2 >= 2 layers of f2");
        add_field(c, "act", &sams::network_config::act, "Activation or its name");
        add_field(c, "dropout", &sams::network_config::dropout,
                  "dropout probability in f1's residual blocks, [0, 1)");
        add_field(c, "layer_norm_eps", &sams::network_config::layer_norm_eps, "LayerNorm epsilon >= 1e-12");
        finish_config(c);
        c.def_property_readonly("feature_dim", &sams::network_config::feature_dim,
                                "E = H*(N-2)/s, the width of f2");
    }
    {
        table<sams::optimizer_config>().class_name = "OptimizerConfig";
        py::class_<sams::optimizer_config> c(m, "OptimizerConfig",
                                             "Adam for the scheduler nets and the update schedule.");
        add_field(c, "learning_rate", &sams::optimizer_config::learning_rate, "Adam step size > 0");
        add_field(c, "beta1", &sams::optimizer_config::beta1, "Adam beta1 in [0, 1)");
        add_field(c, "beta2", &sams::optimizer_config::beta2, "Adam beta2 in [0, 1)");
        add_field(c, "eps", &sams::optimizer_config::eps, "Adam epsilon >= 1e-12");
        add_field(c, "weight_decay", &sams::optimizer_config::weight_decay, "L2 weight decay >= 0");
        add_field(c, "reset_each_update", &sams::optimizer_config::reset_each_update,
                  "fresh Adam state per update");
        add_field(c, "exploit_steps", &sams::optimizer_config::exploit_steps,
                  "full-batch steps for f1 per update");
        add_field(c, "explore_steps", &sams::optimizer_config::explore_steps,
                  "full-batch steps for f2 per update");
        add_field(c, "early_stop_mse", &sams::optimizer_config::early_stop_mse,
                  "stop a net's steps below this MSE");
        finish_config(c);
    }
    {
        table<sams::reward_config>().class_name = "RewardConfig";
        py::class_<sams::reward_config> c(m, "RewardConfig", "The lagged reward (docs/algorithm.md).");
        add_field(c, "mode", &sams::reward_config::mode, "RewardMode or its name");
        add_field(c, "a", &sams::reward_config::a, "slope of the progress term");
        add_field(c, "b", &sams::reward_config::b, "offset of the progress term");
        add_field(c, "alpha", &sams::reward_config::alpha, "weight of the progress term in [0, 1]");
        add_field(c, "smoothing", &sams::reward_config::smoothing,
                  "smooth the progress with its running mean");
        add_field(c, "smoothing_lambda", &sams::reward_config::smoothing_lambda, "lambda in [0, 1)");
        add_field(c, "length_normalized_chosen", &sams::reward_config::length_normalized_chosen,
                  "sample term uses a_w / n_w (needs chosen_length)");
        add_field(c, "chosen_reward_term", &sams::reward_config::chosen_reward_term,
                  "add the normalised chosen implicit reward to the sample term");
        add_field(c, "reference_compat", &sams::reward_config::reference_compat,
                  "reproduce the public code's quirks");
        finish_config(c);
    }
    {
        table<sams::pool_config>().class_name = "PoolConfig";
        py::class_<sams::pool_config> c(m, "PoolConfig", "The replay pool of past (context, target) rows.");
        add_field(c, "capacity_rows", &sams::pool_config::capacity_rows, "bound on stored rows (> 0)");
        add_field(c, "replay_batches", &sams::pool_config::replay_batches,
                  "P: pending batches' worth of rows replayed");
        finish_config(c);
    }
    {
        table<sams::selection_config>().class_name = "SelectionConfig";
        py::class_<sams::selection_config> c(m, "SelectionConfig",
                                             "How many pairs are selected, how, and their weights.");
        add_field(c, "ratio", &sams::selection_config::ratio, "rho in (0, 1]; K = clamp(round(rho*B), 1, B)");
        add_field(c, "rule", &sams::selection_config::rule, "SelectionRule or its name");
        add_field(c, "temperature", &sams::selection_config::temperature, "tau > 0 for softmax_sample");
        add_field(c, "explore_weight", &sams::selection_config::explore_weight, "w in u = f1 + w*f2");
        add_field(c, "warmup_steps", &sams::selection_config::warmup_steps,
                  "random selection for this many steps; 0: until the nets trained once");
        add_field(c, "weights", &sams::selection_config::weights, "WeightScaling or its name");
        finish_config(c);
    }
    {
        table<sams::scheduler_config>().class_name = "SchedulerConfig";
        py::class_<sams::scheduler_config> c(m, "SchedulerConfig",
                                             "Everything that configures a Scheduler: six sections, each a "
                                             "config object or a dict of its fields.");
        add_section(c, "loss", &sams::scheduler_config::loss, "LossConfig");
        add_section(c, "net", &sams::scheduler_config::net, "NetworkConfig");
        add_section(c, "opt", &sams::scheduler_config::opt, "OptimizerConfig");
        add_section(c, "reward", &sams::scheduler_config::reward, "RewardConfig");
        add_section(c, "pool", &sams::scheduler_config::pool, "PoolConfig");
        add_section(c, "select", &sams::scheduler_config::select, "SelectionConfig");
        finish_config(c);
        c.def_static("paper", &sams::scheduler_config::paper,
                     "The paper's settings (H = 4096, N = 16, ...): about 0.4 B parameters at D = 4096.");
        c.def(
            "validate", [](const sams::scheduler_config& x) { x.validate(); },
            "Raises sams.InvalidArgument naming the first inconsistent field.");
    }

    // Decision.
    py::class_<py_decision>(m, "Decision",
                            "What a step hands back. The arrays are numpy views of the C++ result (no copy); "
                            "they stay valid while any of them, or the Decision, is alive.")
        .def_property_readonly(
            "selected",
            [](py::object self) { return view_of<std::int64_t>(self.cast<py_decision&>().d.selected, self); },
            "int64 (K,): indices of the pairs to train on, ascending")
        .def_property_readonly(
            "mask", [](py::object self) { return view_of<bool>(self.cast<py_decision&>().d.mask, self); },
            "bool (B,): True for selected pairs")
        .def_property_readonly(
            "weight", [](py::object self) { return view_of<T>(self.cast<py_decision&>().d.weight, self); },
            "float32 (B,): loss weights w_i (1/K or 1/B for selected pairs, 0 otherwise)")
        .def_property_readonly(
            "loss", [](py::object self) { return view_of<T>(self.cast<py_decision&>().d.loss, self); },
            "float32 (B,): per-pair losses l_i")
        .def_property_readonly(
            "d_policy_chosen",
            [](py::object self) { return view_of<T>(self.cast<py_decision&>().d.d_policy_chosen, self); },
            "float32 (B,): d(sum_j w_j l_j)/d policy_chosen_i")
        .def_property_readonly(
            "d_policy_rejected",
            [](py::object self) { return view_of<T>(self.cast<py_decision&>().d.d_policy_rejected, self); },
            "float32 (B,): d(sum_j w_j l_j)/d policy_rejected_i")
        .def_property_readonly(
            "score", [](py::object self) { return view_of<T>(self.cast<py_decision&>().d.score, self); },
            "float32 (B,): scheduler scores u_i (empty for the baselines)")
        .def_property_readonly(
            "metrics", [](const py_decision& d) { return metrics_dict(d.d.metrics); },
            "per-step diagnostics, a dict")
        .def(
            "tensors",
            [](py::object self) {
                const py::object from_numpy = py::module_::import("torch").attr("from_numpy");
                py::dict out;
                for (const char* k :
                     {"selected", "mask", "weight", "loss", "d_policy_chosen", "d_policy_rejected", "score"})
                    out[k] = from_numpy(self.attr(k));
                return out;
            },
            "The arrays as torch tensors sharing the same memory (torch.from_numpy), as a dict.")
        .def("__repr__", [](const py_decision& d) {
            std::ostringstream s;
            s << "Decision(B=" << d.d.mask.size() << ", K=" << d.d.selected.size()
              << ", step=" << d.d.metrics.step << ", selected_loss=" << d.d.metrics.selected_loss << ")";
            return s.str();
        });

    // Scheduler.
    py::class_<py_sams_scheduler>(m, "Scheduler",
                                  R"doc(The SamS contextual-bandit sample scheduler (float32, CPU).

Scheduler(context_dim, seed=0, config=None, *, loss=None, net=None, opt=None, reward=None,
          pool=None, select=None)

context_dim is D, the width of the per-pair contexts. config is a SchedulerConfig or a dict
of sections; each section keyword (a config object or a dict of its fields) replaces or, as
a dict, updates that section. Omitted fields keep the C++ defaults. The configuration is
validated here: a bad value raises sams.InvalidArgument with the C++ message.

Each step() scores the batch, selects K pairs and learns one step late from the progress the
previous selection earned. state_dict() / load_state_dict() and pickling reproduce an
uninterrupted run bit for bit.)doc")
        .def(py::init([](std::size_t context_dim, std::uint64_t seed, py::object config, py::object loss,
                         py::object net, py::object opt, py::object reward, py::object pool,
                         py::object select) {
                 auto p = std::make_unique<py_sams_scheduler>();
                 p->s.emplace(build_config(config, loss, net, opt, reward, pool, select), context_dim, seed);
                 return p;
             }),
             py::arg("context_dim"), py::arg("seed") = 0, py::arg("config") = py::none(), py::kw_only(),
             py::arg("loss") = py::none(), py::arg("net") = py::none(), py::arg("opt") = py::none(),
             py::arg("reward") = py::none(), py::arg("pool") = py::none(), py::arg("select") = py::none())
        .def(
            "step",
            [](py_sams_scheduler& self, py::object pc, py::object pr, py::object rc, py::object rr,
               py::object ctx, py::object cl, py::object rl, py::object ids, py::object sk) {
                batch_inputs in(pc, pr, rc, rr, cl, rl, ctx, ids, sk);
                auto out = std::make_unique<py_decision>();
                unlocked(self.mu, [&] { self.s->step(in.batch, out->d); });
                self.last_inputs = in.report();
                return out;
            },
            SAMS_STEP_ARGS, step_doc)
        .def(
            "state_dict",
            [](py_sams_scheduler& self) {
                std::vector<std::uint8_t> bytes = unlocked(self.mu, [&] { return self.s->serialize(); });
                return to_bytes(bytes);
            },
            "The complete state (configuration, nets, Adam moments, pool, pending batch, RNGs) as checkpoint "
            "bytes.")
        .def(
            "load_state_dict",
            [](py_sams_scheduler& self, const py::bytes& state) {
                const std::vector<std::uint8_t> bytes = from_bytes(state);
                unlocked(self.mu, [&] { restore_from_bytes(*self.s, bytes); });
            },
            py::arg("state"),
            "Replaces the state with state_dict() bytes of a scheduler with the same configuration and "
            "context_dim; "
            "otherwise raises sams.CheckpointError and changes nothing.")
        .def_static(
            "from_state_dict",
            [](const py::bytes& state) {
                const std::vector<std::uint8_t> bytes = from_bytes(state);
                auto p = std::make_unique<py_sams_scheduler>();
                p->s.emplace(scheduler_t::deserialize(bytes));
                return p;
            },
            py::arg("state"), "A new scheduler from state_dict() bytes (any configuration).")
        .def_property_readonly(
            "config", [](const py_sams_scheduler& self) { return self.s->config(); },
            "A copy of the configuration")
        .def_property_readonly(
            "context_dim", [](const py_sams_scheduler& self) { return self.s->context_dim(); }, "D")
        .def_property_readonly(
            "steps", [](const py_sams_scheduler& self) { return self.s->steps(); }, "steps taken so far")
        .def_property_readonly(
            "updates", [](const py_sams_scheduler& self) { return self.s->updates(); },
            "lagged updates of the nets so far")
        .def_property_readonly(
            "pool_size", [](const py_sams_scheduler& self) { return self.s->pool_size(); },
            "rows in the replay pool")
        .def(
            "_last_inputs", [](const py_sams_scheduler& self) { return self.last_inputs; },
            "For tests: {name: (data address C++ read, copied?)} of the last successful step's inputs.")
        .def(py::pickle(
            [](py_sams_scheduler& self) {
                std::vector<std::uint8_t> bytes = unlocked(self.mu, [&] { return self.s->serialize(); });
                return py::make_tuple(to_bytes(bytes));
            },
            [](const py::tuple& t) {
                if (t.size() != 1)
                    throw sams::checkpoint_error("Scheduler pickle: expected one bytes object");
                auto p = std::make_unique<py_sams_scheduler>();
                p->s.emplace(scheduler_t::deserialize(from_bytes(t[0].cast<py::bytes>())));
                return p;
            }));

    // Guided selection (include/sams/guided/): configuration, scheduler, CountSketch.
    py::enum_<sams::guided_drop>(m, "GuidedDrop", "How guided selection decides how many pairs to drop.")
        .value("none", sams::guided_drop::none)
        .value("fixed_fraction", sams::guided_drop::fixed_fraction)
        .value("estimated", sams::guided_drop::estimated);
    {
        table<sams::guided_config>().class_name = "GuidedConfig";
        py::class_<sams::guided_config> c(m, "GuidedConfig", "Configuration of guided selection.");
        add_section(c, "loss", &sams::guided_config::loss, "LossConfig: the host's preference loss");
        add_field(c, "sketch_dim", &sams::guided_config::sketch_dim,
                  "k, the width of every gradient sketch (required)");
        add_field(c, "memory_capacity", &sams::guided_config::memory_capacity,
                  "example ids remembered (LRU beyond)");
        add_field(c, "drop", &sams::guided_config::drop, "GuidedDrop or its name");
        add_field(c, "drop_fraction", &sams::guided_config::drop_fraction, "q of fixed_fraction, [0, 1)");
        add_field(c, "max_drop_fraction", &sams::guided_config::max_drop_fraction,
                  "estimated: at most this share dropped");
        add_field(c, "estimate_horizon", &sams::guided_config::estimate_horizon,
                  "estimated: steps over which batches fade");
        add_field(c, "estimate_confidence", &sams::guided_config::estimate_confidence,
                  "estimated: drop for rate - z*se, z = this");
        add_field(c, "refresh_interval", &sams::guided_config::refresh_interval,
                  "needs_trusted_refresh() after this many steps on one direction");
        add_field(c, "weights", &sams::guided_config::weights, "WeightScaling or its name");
        finish_config(c);
        c.def(
            "validate", [](const sams::guided_config& x) { x.validate(); },
            "Raises sams.InvalidArgument naming the first field out of range.");
    }
    py::class_<py_guided>(m, "GuidedScheduler",
                          R"doc(Selection guided by a small trusted set of clean pairs (float32).

GuidedScheduler(config=None, **fields)

fields are GuidedConfig's (sketch_dim is required; loss may be a dict). Each step takes the
batch with ids (one example id per pair) and sketches (B x k, s_i = S * grad(a_w,i - a_l,i)),
measures each pair's cosine with the trusted descent direction, remembers its running mean
per id, and drops the pairs of lowest remembered agreement. Set the direction first with
set_trusted() (per-pair sketches of the trusted pairs) or set_trusted_direction(g).)doc")
        .def(py::init([](py::object config, const py::kwargs& kw) {
                 sams::guided_config c = as_config<sams::guided_config>(config, "GuidedScheduler(config=)");
                 table<sams::guided_config>().apply(c, kw);
                 auto p = std::make_unique<py_guided>();
                 p->s.emplace(c);
                 return p;
             }),
             py::arg("config") = py::none())
        .def(
            "set_trusted_direction",
            [](py_guided& self, py::object g, std::optional<double> clean_agreement) {
                input_array in = as_float_input(g, "direction", 1);
                const std::span<const T> v(static_cast<const T*>(in.array.data()),
                                           static_cast<std::size_t>(in.array.shape(0)));
                unlocked(self.mu, [&] { self.s->set_trusted_direction(v, clean_agreement); });
            },
            py::arg("direction"), py::arg("clean_agreement") = py::none(),
            "Sets the trusted descent direction's sketch g = S*(-grad L_trusted) (k entries); the "
            "'estimated' drop "
            "rule also needs clean_agreement in (0, 1].")
        .def(
            "set_trusted",
            [](py_guided& self, py::object pc, py::object pr, py::object rc, py::object rr, py::object sk,
               py::object cl, py::object rl) {
                batch_inputs in(pc, pr, rc, rr, cl, rl, py::none(), py::none(), sk);
                unlocked(self.mu, [&] { self.s->set_trusted(in.batch); });
            },
            py::arg("policy_chosen"), py::arg("policy_rejected"), py::arg("reference_chosen") = py::none(),
            py::arg("reference_rejected") = py::none(), py::kw_only(), py::arg("sketches"),
            py::arg("chosen_length") = py::none(), py::arg("rejected_length") = py::none(),
            "Sets the direction from the trusted pairs' log-probs and per-pair sketches (T x k, T >= 2), "
            "with the "
            "leave-one-out clean agreement.")
        .def(
            "step",
            [](py_guided& self, py::object pc, py::object pr, py::object rc, py::object rr, py::object ctx,
               py::object cl, py::object rl, py::object ids, py::object sk) {
                batch_inputs in(pc, pr, rc, rr, cl, rl, ctx, ids, sk);
                auto out = std::make_unique<py_decision>();
                unlocked(self.mu, [&] { self.s->step(in.batch, out->d); });
                self.last_inputs = in.report();
                return out;
            },
            SAMS_STEP_ARGS, step_doc)
        .def(
            "needs_trusted_refresh", [](const py_guided& self) { return self.s->needs_trusted_refresh(); },
            "True before the first direction and once the current one served refresh_interval steps.")
        .def(
            "state_dict",
            [](py_guided& self) { return to_bytes(unlocked(self.mu, [&] { return self.s->serialize(); })); },
            "The complete state (configuration, direction, agreement memory, noise estimate) as checkpoint "
            "bytes.")
        .def(
            "load_state_dict",
            [](py_guided& self, const py::bytes& state) {
                guided_t loaded = guided_t::deserialize(from_bytes(state));
                const std::string diff = guided_difference(self.s->config(), loaded.config());
                if (!diff.empty())
                    throw sams::checkpoint_error(
                        "checkpoint: written with a different configuration (field " + diff + " differs)");
                unlocked(self.mu, [&] { *self.s = std::move(loaded); });
            },
            py::arg("state"),
            "Replaces the state with state_dict() bytes of the same configuration, or raises "
            "sams.CheckpointError "
            "and changes nothing.")
        .def_static(
            "from_state_dict",
            [](const py::bytes& state) {
                auto p = std::make_unique<py_guided>();
                p->s.emplace(guided_t::deserialize(from_bytes(state)));
                return p;
            },
            py::arg("state"), "A new guided scheduler from state_dict() bytes.")
        .def_property_readonly(
            "config", [](const py_guided& self) { return self.s->config(); }, "A copy of the configuration")
        .def_property_readonly(
            "steps", [](const py_guided& self) { return self.s->steps(); }, "steps taken so far")
        .def_property_readonly(
            "sketch_dim", [](const py_guided& self) { return self.s->sketch_dim(); }, "k")
        .def_property_readonly(
            "noise",
            [](const py_guided& self) {
                const sams::noise_estimate e = self.s->noise();
                py::dict d;
                d["rate"] = e.rate;
                d["standard_error"] = e.standard_error;
                d["effective_steps"] = e.effective_steps;
                return d;
            },
            "The flipped share estimated against the trusted set: rate, standard_error, effective_steps")
        .def_property_readonly(
            "clean_agreement", [](const py_guided& self) { return self.s->clean_agreement(); },
            "The trusted pairs' leave-one-out agreement with the direction (0 if unknown)")
        .def_property_readonly(
            "trusted_direction",
            [](const py_guided& self) {
                const auto g = self.s->trusted_direction();
                py::array_t<T> a(static_cast<py::ssize_t>(g.size()));
                std::copy(g.begin(), g.end(), a.mutable_data());
                return a;
            },
            "A copy of the trusted direction in use (empty before the first)")
        .def_property_readonly(
            "trusted_age", [](const py_guided& self) { return self.s->trusted_age(); },
            "steps on the current direction")
        .def_property_readonly(
            "last_agreement", [](const py_guided& self) { return copy_doubles(self.s->last_agreement()); },
            "float64 (B,): this step's cosines of the last batch")
        .def_property_readonly(
            "last_remembered", [](const py_guided& self) { return copy_doubles(self.s->last_remembered()); },
            "float64 (B,): the remembered mean agreements of the last batch")
        .def(
            "_last_inputs", [](const py_guided& self) { return self.last_inputs; },
            "For tests: {name: (data address C++ read, copied?)} of the last successful step's inputs.")
        .def(py::pickle(
            [](py_guided& self) {
                return py::make_tuple(to_bytes(unlocked(self.mu, [&] { return self.s->serialize(); })));
            },
            [](const py::tuple& t) {
                if (t.size() != 1)
                    throw sams::checkpoint_error("GuidedScheduler pickle: expected one bytes object");
                auto p = std::make_unique<py_guided>();
                p->s.emplace(guided_t::deserialize(from_bytes(t[0].cast<py::bytes>())));
                return p;
            }));

    py::class_<sams::count_sketch>(m, "CountSketch",
                                   R"doc(A seeded CountSketch R^P -> R^k, linear, without a k x P matrix.

CountSketch(width, seed): bucket and sign of parameter j are a documented hash of (seed, j), so
the same sketch can be rebuilt anywhere. accumulate(x, out, offset) adds S*x for parameters
offset .. offset+len(x)-1 into `out` (float32 or float64, in place), so a model is sketched
tensor by tensor.)doc")
        .def(py::init<std::size_t, std::uint64_t>(), py::arg("width"), py::arg("seed"))
        .def_property_readonly("width", &sams::count_sketch::width)
        .def_property_readonly("seed", &sams::count_sketch::seed)
        .def("bucket", &sams::count_sketch::bucket, py::arg("j"))
        .def("sign", &sams::count_sketch::sign, py::arg("j"))
        .def(
            "accumulate",
            [](const sams::count_sketch& cs, py::object x, py::array out, std::uint64_t offset) {
                input_array in = as_float_input(x, "x", 1);
                const std::span<const T> xs(static_cast<const T*>(in.array.data()),
                                            static_cast<std::size_t>(in.array.shape(0)));
                if (out.ndim() != 1 || !(out.flags() & py::array::c_style) || !out.writeable())
                    throw_invalid(
                        "sams::count_sketch::accumulate: out must be a writeable contiguous 1-D array");
                if (out.dtype().is(py::dtype::of<float>())) {
                    std::span<float> o(static_cast<float*>(out.mutable_data()),
                                       static_cast<std::size_t>(out.shape(0)));
                    py::gil_scoped_release r;
                    cs.accumulate(xs, o, offset);
                } else if (out.dtype().is(py::dtype::of<double>())) {
                    std::span<double> o(static_cast<double*>(out.mutable_data()),
                                        static_cast<std::size_t>(out.shape(0)));
                    py::gil_scoped_release r;
                    cs.accumulate(xs, o, offset);
                } else {
                    throw_invalid("sams::count_sketch::accumulate: out must be float32 or float64");
                }
            },
            py::arg("x"), py::arg("out"), py::arg("offset") = 0,
            "out += S * x (x is read as float32; zero-copy for contiguous float32 / CPU torch tensors).")
        .def(
            "apply",
            [](const sams::count_sketch& cs, py::object x) {
                input_array in = as_float_input(x, "x", 1);
                const std::span<const T> xs(static_cast<const T*>(in.array.data()),
                                            static_cast<std::size_t>(in.array.shape(0)));
                py::array_t<T> out(static_cast<py::ssize_t>(cs.width()));
                std::span<T> o(out.mutable_data(), cs.width());
                {
                    py::gil_scoped_release r;
                    cs.apply(xs, o);
                }
                return out;
            },
            py::arg("x"), "S * x as a new float32 array of width entries.");

    py::enum_<sams::distributed_mode>(m, "DistributedMode", "Where a DistributedScheduler's scheduler runs.")
        .value("replicated", sams::distributed_mode::replicated)
        .value("root_broadcast", sams::distributed_mode::root_broadcast);
    py::class_<py_distributed>(m, "DistributedScheduler",
                               R"doc(One SamS decision over the global batch of a torch.distributed group.

DistributedScheduler(scheduler, *, global_batch=0, mode='replicated', root=0, group=None)

Collective: build it on every rank from a Scheduler with the same configuration and seed (its
state is copied; the Scheduler itself is left as it was), after init_process_group. step()
takes this rank's pairs and is collective too: the per-pair inputs are gathered over the group
by the library's distributed_scheduler (include/sams/distributed/), through torch.distributed
collectives on uint8 / float64 CPU tensors. The Decision covers the local pairs: local
indices, the global decision's weights and gradients, so summing (all_reduce SUM) the local
gradients gives the global loss's. global_batch = 0 allows any per-rank sizes.)doc")
        .def(py::init([](py_sams_scheduler& sched, std::size_t global_batch, py::object mode, int root,
                         py::object group) {
                 sams::distributed_options o;
                 o.global_batch = global_batch;
                 o.root = root;
                 if (!mode.is_none())
                     o.mode = convert_field<sams::distributed_mode>(mode, "DistributedScheduler", "mode");
                 scheduler_t copy =
                     scheduler_t::deserialize(unlocked(sched.mu, [&] { return sched.s->serialize(); }));
                 torch_communicator comm(group);
                 auto p = std::make_unique<py_distributed>();
                 {
                     py::gil_scoped_release release;  // the constructor's collectives take the GIL back
                     p->s.emplace(std::move(comm), std::move(copy), o);
                 }
                 return p;
             }),
             py::arg("scheduler"), py::kw_only(), py::arg("global_batch") = 0, py::arg("mode") = py::none(),
             py::arg("root") = 0, py::arg("group") = py::none())
        .def(
            "step",
            [](py_distributed& self, py::object pc, py::object pr, py::object rc, py::object rr,
               py::object ctx, py::object cl, py::object rl, py::object ids, py::object sk) {
                batch_inputs in(pc, pr, rc, rr, cl, rl, ctx, ids, sk);
                auto out = std::make_unique<py_decision>();
                unlocked(self.mu, [&] { self.s->step(in.batch, out->d); });
                return out;
            },
            SAMS_STEP_ARGS, "Collective. As Scheduler.step for this rank's pairs; see the class docstring.")
        .def(
            "global_decision",
            [](py_distributed& self) {
                auto out = std::make_unique<py_decision>();
                out->d = self.s->global_decision();
                return out;
            },
            "A copy of the last step's decision over the whole global batch (the same on every rank).")
        .def(
            "state_dict",
            [](py_distributed& self) {
                return to_bytes(unlocked(self.mu, [&] { return self.s->scheduler().serialize(); }));
            },
            "This rank's scheduler state (identical on every rank in replicated mode; the root's is the live "
            "one "
            "under root_broadcast). Not collective.")
        .def(
            "load_state_dict",
            [](py_distributed& self, const py::bytes& state) {
                const std::vector<std::uint8_t> bytes = from_bytes(state);
                unlocked(self.mu, [&] { restore_from_bytes(self.s->scheduler(), bytes); });
            },
            py::arg("state"),
            "Restores this rank's scheduler (call it on every rank with the same bytes). Not collective.")
        .def_property_readonly(
            "rank", [](const py_distributed& self) { return self.s->rank(); },
            "this process's rank in the group")
        .def_property_readonly(
            "size", [](const py_distributed& self) { return self.s->size(); }, "ranks in the group")
        .def_property_readonly(
            "offset", [](const py_distributed& self) { return self.s->offset(); },
            "global index of this rank's first pair in the last step")
        .def_property_readonly(
            "global_size", [](const py_distributed& self) { return self.s->global_size(); },
            "pairs in the last step's global batch")
        .def_property_readonly(
            "steps", [](const py_distributed& self) { return self.s->steps(); }, "steps taken so far")
        .def_property_readonly(
            "last_payload_bytes", [](const py_distributed& self) { return self.s->last_payload_bytes(); },
            "bytes this rank sent and received in the last step's collectives");

    // Baselines: one class each, the same step/state_dict/pickle surface.
    auto bind_baseline = [&]<baseline_kind kind>(const char* doc) {
        using W = py_baseline_of<kind>;
        py::class_<W> c(m, baseline_class_name(kind), doc);
        auto make = [](py::object loss, py::object select, std::uint64_t seed, py::object which) {
            auto b = std::make_unique<W>();
            b->kind = kind;
            b->loss = as_config<sams::loss_config>(loss, "loss");
            b->select = as_config<sams::selection_config>(select, "select");
            b->seed = seed;
            b->which = parse_extreme(
                which, kind == baseline_kind::margin ? sams::extreme::smallest : sams::extreme::largest);
            b->build();
            return b;
        };
        if (kind == baseline_kind::uniform)
            c.def(py::init([make](std::uint64_t seed, py::object loss, py::object select) {
                      return make(loss, select, seed, py::none());
                  }),
                  py::arg("seed") = 0, py::kw_only(), py::arg("loss") = py::none(),
                  py::arg("select") = py::none());
        else if (kind == baseline_kind::full_batch)
            c.def(py::init([make](py::object loss, py::object select) {
                      return make(loss, select, 0, py::none());
                  }),
                  py::kw_only(), py::arg("loss") = py::none(), py::arg("select") = py::none());
        else
            c.def(py::init([make](py::object which, py::object loss, py::object select) {
                      return make(loss, select, 0, which);
                  }),
                  py::arg("which") = py::none(), py::kw_only(), py::arg("loss") = py::none(),
                  py::arg("select") = py::none());
        c.def(
             "step",
             [](W& self, py::object pc, py::object pr, py::object rc, py::object rr, py::object ctx,
                py::object cl, py::object rl, py::object ids, py::object sk) {
                 batch_inputs in(pc, pr, rc, rr, cl, rl, ctx, ids, sk);
                 auto out = std::make_unique<py_decision>();
                 unlocked(self.mu, [&] { self.step(in.batch, out->d); });
                 self.last_inputs = in.report();
                 return out;
             },
             SAMS_STEP_ARGS, step_doc)
            .def(
                "state_dict",
                [](W& self) { return to_bytes(unlocked(self.mu, [&] { return self.serialize(); })); },
                "The selector's state (configuration, step count, RNG) as checkpoint bytes.")
            .def(
                "load_state_dict",
                [](W& self, const py::bytes& state) {
                    const std::vector<std::uint8_t> bytes = from_bytes(state);
                    unlocked(self.mu, [&] {
                        auto loaded = std::make_unique<py_baseline>();
                        py_baseline::deserialize_into(*loaded, bytes);
                        if (loaded->kind != self.kind)
                            throw sams::checkpoint_error(std::string("checkpoint: written by ") +
                                                         baseline_class_name(loaded->kind) + ", not " +
                                                         baseline_class_name(self.kind));
                        sams::scheduler_config a{}, b{};
                        a.loss = self.loss, a.select = self.select, b.loss = loaded->loss,
                        b.select = loaded->select;
                        const std::string diff = sams::detail::first_config_difference(a, b);
                        if (!diff.empty() || loaded->which != self.which)
                            throw sams::checkpoint_error(
                                "checkpoint: written with a different configuration (field " +
                                (diff.empty() ? std::string("which") : diff) + " differs)");
                        self.seed = loaded->seed;
                        self.step_offset = loaded->step_offset;
                        self.impl = std::move(loaded->impl);
                    });
                },
                py::arg("state"),
                "Replaces the state with state_dict() bytes of the same class and configuration, or raises "
                "sams.CheckpointError and changes nothing.")
            .def_property_readonly(
                "steps", [](const W& self) { return self.steps(); }, "steps taken so far")
            .def_property_readonly(
                "loss_config", [](const W& self) { return self.loss; }, "A copy of the loss configuration")
            .def_property_readonly(
                "select_config", [](const W& self) { return self.select; },
                "A copy of the selection configuration")
            .def(
                "_last_inputs", [](const W& self) { return self.last_inputs; },
                "For tests: {name: (data address C++ read, copied?)} of the last successful step's inputs.")
            .def(py::pickle(
                [](W& self) {
                    return py::make_tuple(to_bytes(unlocked(self.mu, [&] { return self.serialize(); })));
                },
                [](const py::tuple& t) {
                    if (t.size() != 1)
                        throw sams::checkpoint_error("selector pickle: expected one bytes object");
                    auto b = std::make_unique<W>();
                    py_baseline::deserialize_into(*b, from_bytes(t[0].cast<py::bytes>()));
                    if (b->kind != kind) throw sams::checkpoint_error("selector pickle: wrong class");
                    return b;
                }));
        if (kind == baseline_kind::loss || kind == baseline_kind::margin)
            c.def_property_readonly("which", [](const W& self) { return self.which; });
    };
    bind_baseline.operator()<baseline_kind::full_batch>(
        "Plain DPO: every pair selected with weight 1/B.\n\nFullBatch(*, loss=None, select=None)");
    bind_baseline.operator()<baseline_kind::uniform>(
        "A uniformly random K-subset each step, the key control for SamS; deterministic given the seed.\n\n"
        "UniformSelector(seed=0, *, loss=None, select=None)");
    bind_baseline.operator()<baseline_kind::loss>(
        "The K pairs with the largest loss (default) or the smallest ('smallest').\n\n"
        "LossSelector(which='largest', *, loss=None, select=None)");
    bind_baseline.operator()<baseline_kind::margin>(
        "The K pairs with the smallest margin (default) or the largest ('largest').\n\n"
        "MarginSelector(which='smallest', *, loss=None, select=None)");
}
