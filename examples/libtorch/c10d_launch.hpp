// Starting R local processes on a gloo process group from one command, for the data-parallel
// example and its test. A program calls launch(argc, argv, nproc) first thing in main():
//  - in the launching process (no SAMS_RANK in the environment) it re-executes the program
//    R times with SAMS_RANK / SAMS_WORLD_SIZE / SAMS_STORE set, waits for all of them, stops
//    the others if one fails, and returns the exit status to return from main;
//  - in a rank it returns nothing and gloo_group() joins the group.
// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) are honoured too, so the
// same binary runs under torchrun or a cluster launcher across machines (TCP store).
#pragma once

#include <torch/torch.h>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sams::libtorch {

struct rank_info {
    int rank = 0;
    int world = 1;
};

/// Returns the exit status in the launching process; nothing in a rank (or with nproc ≤ 1
/// and no launcher variables: a single process of rank 0).
inline std::optional<int> launch(char** argv, int nproc) {
    if (std::getenv("SAMS_RANK") != nullptr || std::getenv("RANK") != nullptr || nproc <= 1)
        return std::nullopt;
    char dir_template[] = "/tmp/sams_gloo_XXXXXX";
    const char* dir = mkdtemp(dir_template);
    if (dir == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::string store = std::string(dir) + "/store";
    std::vector<pid_t> children;
    for (int r = 0; r < nproc; ++r) {
        const pid_t pid = fork();
        if (pid < 0) {
            std::perror("fork");
            return 1;
        }
        if (pid == 0) {
            setenv("SAMS_RANK", std::to_string(r).c_str(), 1);
            setenv("SAMS_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
            setenv("SAMS_STORE", store.c_str(), 1);
            execv("/proc/self/exe", argv);
            std::perror("execv");
            _exit(127);
        }
        children.push_back(pid);
    }
    int result = 0;
    for (std::size_t left = children.size(); left > 0; --left) {
        int status = 0;
        const pid_t done = waitpid(-1, &status, 0);
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && result == 0) {
            result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            for (const pid_t c : children)  // a peer of a failed rank would wait in gloo
                if (c != done) kill(c, SIGTERM);
        }
    }
    std::filesystem::remove_all(dir);
    return result;
}

inline rank_info this_rank() {
    auto read = [](const char* a, const char* b) -> const char* {
        const char* v = std::getenv(a);
        return v != nullptr ? v : std::getenv(b);
    };
    rank_info info;
    if (const char* r = read("SAMS_RANK", "RANK")) info.rank = std::atoi(r);
    if (const char* w = read("SAMS_WORLD_SIZE", "WORLD_SIZE")) info.world = std::atoi(w);
    return info;
}

/// Joins this rank's gloo group over loopback (SAMS_STORE: a file store) or over
/// MASTER_ADDR:MASTER_PORT (a TCP store, rank 0 serving). `timeout` bounds every collective.
inline c10::intrusive_ptr<c10d::ProcessGroup> gloo_group(
    const rank_info& info, std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    c10::intrusive_ptr<c10d::Store> store;
    std::string host = "127.0.0.1";
    if (const char* path = std::getenv("SAMS_STORE")) {
        store = c10::make_intrusive<c10d::FileStore>(path, info.world);
    } else {
        const char* addr = std::getenv("MASTER_ADDR");
        const char* port = std::getenv("MASTER_PORT");
        if (addr == nullptr || port == nullptr)
            throw std::runtime_error("gloo_group: set SAMS_STORE or MASTER_ADDR and MASTER_PORT");
        c10d::TCPStoreOptions o;
        o.port = static_cast<std::uint16_t>(std::atoi(port));
        o.isServer = info.rank == 0;
        o.numWorkers = static_cast<std::size_t>(info.world);
        store = c10::make_intrusive<c10d::TCPStore>(addr, o);
        host = addr == std::string("127.0.0.1") || addr == std::string("localhost") ? "127.0.0.1" : "";
    }
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                            : c10d::ProcessGroupGloo::createDeviceForHostname(host));
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, info.rank, info.world, options);
}

}  // namespace sams::libtorch
