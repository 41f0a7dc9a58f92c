// The evaluation harness (docs/benchmarks.md): every method × noise level × seed on the
// synthetic preference world, written out as a CSV of runs, per-epoch curves, a summary
// with 95 % t intervals, and a Markdown table. Plots come from tools/plot_benchmarks.gp.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "world/experiment.hpp"
#include "world/methods.hpp"
#include "world/stats.hpp"
#include "world/world.hpp"

namespace sb = sams::bench;

namespace {

struct options {
    std::vector<std::string> methods = sb::method_names();
    std::vector<double> etas{0.0, 0.1, 0.2, 0.4};
    std::size_t seeds = 5;
    std::uint64_t first_seed = 1;
    std::size_t jobs = 1;
    std::string out = "bench-results";
    sb::world_config world{};
    sb::train_config train{};
};

void usage() {
    std::cout <<
        R"(usage: sams_evaluate [options]
  --methods a,b,...   methods to run (default: all)
  --etas x,y,...      label-noise rates (default: 0,0.1,0.2,0.4)
  --seeds N           seeds per cell (default: 5), seeds first-seed .. first-seed+N-1
  --first-seed S      (default: 1)
  --noise MODEL       uniform | near_tie (default: uniform)
  --epochs E          policy training epochs (default: 4)
  --batch B           pairs per step; selectors train on B/2 (default: 32)
  --lr X              policy Adam learning rate (default: 1e-2)
  --beta X            DPO beta (default: 0.1)
  --hidden H          policy width (default: 32)
  --train-prompts N   training prompts, 4 pairs each (default: 256)
  --label-temp T      Bradley-Terry temperature (default: 0.25)
  --jobs J            cells (seed x eta) run in parallel threads (default: 1)
  --out DIR           output directory (default: bench-results)
methods:
)";
    for (const auto& m : sb::method_names()) std::cout << "  " << m << ": " << sb::method_description(m) << "\n";
    std::cout << "  sams[-paper]:key=value:...  a SamS variant (keys: see bench/world/methods.hpp)\n";
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage();
            std::exit(0);
        }
        if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value (see --help)");
        const std::string v = argv[++i];
        if (a == "--methods") {
            o.methods = split_list(v);
            for (const auto& m : o.methods)
                if (!sb::is_method(m)) throw std::runtime_error("unknown method '" + m + "' (see --help)");
                else if (m.rfind("sams", 0) == 0 && m.rfind("sams-agree", 0) != 0)
                    (void)sb::sams_setup(m, sams::loss_config{});  // reject bad overrides before any run
                else if (m.rfind("guided", 0) == 0)
                    (void)sb::guided_setup(m, sams::loss_config{});
                else if (m.rfind("matched:", 0) == 0)
                    (void)sb::guided_setup(m.substr(8), sams::loss_config{});
        } else if (a == "--etas") {
            o.etas.clear();
            for (const auto& x : split_list(v)) o.etas.push_back(std::stod(x));
        } else if (a == "--seeds") {
            o.seeds = std::stoul(v);
        } else if (a == "--first-seed") {
            o.first_seed = std::stoull(v);
        } else if (a == "--noise") {
            if (v != "uniform" && v != "near_tie") throw std::runtime_error("--noise must be uniform or near_tie");
            o.world.noise = v == "uniform" ? sb::noise_model::uniform : sb::noise_model::near_tie;
        } else if (a == "--epochs") {
            o.train.epochs = std::stoul(v);
        } else if (a == "--batch") {
            o.train.batch_size = std::stoul(v);
        } else if (a == "--lr") {
            o.train.learning_rate = std::stod(v);
        } else if (a == "--beta") {
            o.train.beta = std::stod(v);
        } else if (a == "--hidden") {
            o.train.policy_hidden = std::stoul(v);
        } else if (a == "--train-prompts") {
            o.world.train_prompts = std::stoul(v);
        } else if (a == "--label-temp") {
            o.world.label_temperature = std::stod(v);
        } else if (a == "--jobs") {
            o.jobs = std::max<std::size_t>(1, std::stoul(v));
        } else if (a == "--out") {
            o.out = v;
        } else {
            throw std::runtime_error("unknown option " + a + " (see --help)");
        }
    }
    if (o.seeds == 0 || o.etas.empty() || o.methods.empty())
        throw std::runtime_error("need at least one seed, noise rate and method");
    return o;
}

struct run_row {
    std::string method;
    double eta = 0.0;
    std::uint64_t seed = 0;
    sb::run_result result;
};

// The columns of runs.csv and the metrics of the summary, in one place.
struct metric {
    const char* name;
    double (*get)(const sb::run_result&);
};
const std::vector<metric>& metrics() {
    static const std::vector<metric> m{
        {"test_accuracy", [](const sb::run_result& r) { return r.test.accuracy; }},
        {"val_accuracy", [](const sb::run_result& r) { return r.val.accuracy; }},
        {"reward_gain", [](const sb::run_result& r) { return r.reward_gain; }},
        {"win_rate", [](const sb::run_result& r) { return r.win_rate; }},
        {"test_loss", [](const sb::run_result& r) { return r.test.loss; }},
        {"test_chosen_reward", [](const sb::run_result& r) { return r.test.chosen_reward; }},
        {"test_margin", [](const sb::run_result& r) { return r.test.margin; }},
        {"flipped_fraction", [](const sb::run_result& r) { return r.flipped_fraction; }},
        {"seconds", [](const sb::run_result& r) { return r.seconds; }},
    };
    return m;
}

std::string fmt(double v, int digits = 4) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

void write_outputs(const options& o, const std::vector<run_row>& rows) {
    namespace fs = std::filesystem;
    fs::create_directories(o.out);
    {
        std::ofstream f(fs::path(o.out) / "runs.csv");
        f << "method,noise,eta,seed,steps,trained_pairs";
        for (const auto& m : metrics()) f << "," << m.name;
        f << "\n";
        for (const auto& r : rows) {
            f << r.method << "," << sb::to_string(o.world.noise) << "," << r.eta << "," << r.seed << ","
              << r.result.steps << "," << r.result.trained_pairs;
            for (const auto& m : metrics()) f << "," << fmt(m.get(r.result), 6);
            f << "\n";
        }
    }
    {
        std::ofstream f(fs::path(o.out) / "curves.csv");
        f << "method,eta,seed,epoch,steps,flipped_fraction,trained_fraction,train_loss,val_accuracy,small_loss_overlap,"
             "score_spread\n";
        for (const auto& r : rows)
            for (const auto& w : r.result.windows)
                f << r.method << "," << r.eta << "," << r.seed << "," << w.epoch << "," << w.steps << ","
                  << fmt(w.flipped_fraction, 6) << "," << fmt(w.trained_fraction, 6) << ","
                  << fmt(w.train_loss, 6) << "," << fmt(w.val_accuracy, 6) << "," << fmt(w.small_loss_overlap, 6)
                  << "," << fmt(w.score_spread, 6) << "\n";
    }
    // Summary over seeds, per method and η: one row each, mean and CI half-width per metric.
    std::map<std::pair<std::string, double>, std::vector<const sb::run_result*>> cells;
    for (const auto& r : rows) cells[{r.method, r.eta}].push_back(&r.result);
    const auto summary_of = [&](const std::string& method, double eta, const metric& m) {
        std::vector<double> v;
        for (const auto* r : cells.at({method, eta})) v.push_back(m.get(*r));
        return sb::summarize(v);
    };
    {
        std::ofstream f(fs::path(o.out) / "summary.csv");
        f << "method,eta,n";
        for (const auto& m : metrics()) f << "," << m.name << "," << m.name << "_ci";
        f << "\n";
        for (const auto& method : o.methods)
            for (const double eta : o.etas) {
                f << method << "," << eta << "," << cells.at({method, eta}).size();
                for (const auto& m : metrics()) {
                    const auto s = summary_of(method, eta, m);
                    f << "," << fmt(s.mean, 6) << "," << fmt(s.half_width, 6);
                }
                f << "\n";
            }
    }
    // Per-epoch curves averaged over seeds, for the plots.
    {
        std::ofstream f(fs::path(o.out) / "curves_mean.csv");
        f << "method,eta,epoch,steps,flipped_fraction,flipped_fraction_ci,val_accuracy,val_accuracy_ci,"
             "small_loss_overlap\n";
        for (const auto& method : o.methods)
            for (const double eta : o.etas) {
                std::map<std::size_t, std::vector<double>> flip, val, overlap;
                std::map<std::size_t, std::size_t> steps;
                for (const auto& r : rows)
                    if (r.method == method && r.eta == eta)
                        for (const auto& w : r.result.windows) {
                            flip[w.epoch].push_back(w.flipped_fraction);
                            val[w.epoch].push_back(w.val_accuracy);
                            overlap[w.epoch].push_back(w.small_loss_overlap);
                            steps[w.epoch] = w.steps;
                        }
                for (const auto& [epoch, v] : flip) {
                    const auto sf = sb::summarize(v);
                    const auto sv = sb::summarize(val[epoch]);
                    f << method << "," << eta << "," << epoch << "," << steps[epoch] << "," << fmt(sf.mean, 6) << ","
                      << fmt(sf.half_width, 6) << "," << fmt(sv.mean, 6) << "," << fmt(sv.half_width, 6) << ","
                      << fmt(sb::summarize(overlap[epoch]).mean, 6) << "\n";
                }
            }
    }
    {
        std::ofstream f(fs::path(o.out) / "table.md");
        f << "Mean ± 95 % CI half-width over " << o.seeds << " seeds (t-quantile, n−1 d.o.f.); noise model "
          << sb::to_string(o.world.noise) << ".\n\n";
        f << "| method | η | test accuracy | reward gain | win rate | test loss | chosen reward | flipped among trained |\n";
        f << "|---|---|---|---|---|---|---|---|\n";
        const auto cell = [&](const std::string& method, double eta, std::size_t k, int digits) {
            const auto s = summary_of(method, eta, metrics()[k]);
            return fmt(s.mean, digits) + " ± " + fmt(s.half_width, digits);
        };
        for (const double eta : o.etas)
            for (const auto& method : o.methods)
                f << "| " << method << " | " << eta << " | " << cell(method, eta, 0, 3) << " | " << cell(method, eta, 2, 3)
                  << " | " << cell(method, eta, 3, 3) << " | " << cell(method, eta, 4, 3) << " | "
                  << cell(method, eta, 5, 3) << " | " << cell(method, eta, 7, 3) << " |\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const options o = parse(argc, argv);
        struct task {
            double eta;
            std::uint64_t seed;
        };
        std::vector<task> tasks;
        for (std::size_t s = 0; s < o.seeds; ++s)
            for (const double eta : o.etas) tasks.push_back({eta, o.first_seed + s});
        std::vector<std::vector<run_row>> results(tasks.size());
        std::atomic<std::size_t> next{0};
        std::mutex print;
        const auto worker = [&] {
            for (std::size_t t; (t = next.fetch_add(1)) < tasks.size();) {
                sb::world_config wc = o.world;
                wc.noise_rate = tasks[t].eta;
                const sb::experiment e(wc, o.train, tasks[t].seed);
                for (const auto& method : o.methods) {
                    // Each method's own randomness differs by seed, not by method, so uniform
                    // and SamS with the same seed still see the same data.
                    run_row row{method, tasks[t].eta, tasks[t].seed, sb::run_method(e, method, tasks[t].seed)};
                    {
                        const std::lock_guard lock(print);
                        std::printf("[%3zu/%zu] eta=%.2f seed=%llu %-11s test acc %.3f  reward gain %+.3f  "
                                    "flipped %.3f  %.1fs\n",
                                    t + 1, tasks.size(), row.eta, static_cast<unsigned long long>(row.seed),
                                    method.c_str(), row.result.test.accuracy, row.result.reward_gain,
                                    row.result.flipped_fraction, row.result.seconds);
                        std::fflush(stdout);
                    }
                    results[t].push_back(std::move(row));
                }
            }
        };
        std::vector<std::thread> threads;
        for (std::size_t j = 1; j < o.jobs; ++j) threads.emplace_back(worker);
        worker();
        for (auto& th : threads) th.join();
        std::vector<run_row> rows;
        for (auto& r : results)
            for (auto& row : r) rows.push_back(std::move(row));
        write_outputs(o, rows);
        std::printf("wrote %s/{runs.csv,curves.csv,summary.csv,curves_mean.csv,table.md}\n", o.out.c_str());
        return 0;
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "sams_evaluate: %s\n", ex.what());
        return 1;
    }
}
