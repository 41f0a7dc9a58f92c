// Data-parallel DPO + SamS over MPI: R ranks each hold B/R pairs of every global batch of B,
// SamS picks K of the B pairs once for all ranks, each rank back-propagates its own selected
// pairs, and an all-reduce sums the gradients. The "policy" is a linear scorer over
// synthetic response features (log π(y|x) = θ·f(y)); the reference is θ = 0.
//
//   mpirun -np 2 ./example_mpi_data_parallel [--steps N] [--batch B] [--dim D]
//
// Rank 0 prints the global metrics; every rank ends with the same θ (checked).
#include <mpi.h>

#include <sams/distributed/distributed_scheduler.hpp>
#include <sams/distributed/mpi.hpp>
#include <sams/sams.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct options {
    std::size_t steps = 200, batch = 16, dim = 16;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const auto value = static_cast<std::size_t>(std::strtoull(argv[i + 1], nullptr, 10));
        if (flag == "--steps")
            o.steps = value;
        else if (flag == "--batch")
            o.batch = value;
        else if (flag == "--dim")
            o.dim = value;
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int status = 0;
    try {
        const options o = parse(argc, argv);
        sams::mpi_communicator comm;
        const int rank = comm.rank(), ranks = comm.size();
        const std::size_t D = o.dim, B = o.batch;

        sams::scheduler_config cfg;
        cfg.net.hidden = 32;
        cfg.net.depth = 3;
        cfg.net.block_size = 8;
        cfg.pool.capacity_rows = 512;
        cfg.opt.learning_rate = 1e-3;
        // Same configuration and seed on every rank; the global batch must split evenly
        // (refused here, on every rank, if it does not).
        sams::distributed_scheduler<float, sams::sams_scheduler<sams::eigen_backend<float>>,
                                    sams::mpi_communicator>
            sched(std::move(comm), sams::sams_scheduler<sams::eigen_backend<float>>(cfg, D, 42),
                  {.global_batch = B});
        const std::size_t local = B / static_cast<std::size_t>(ranks);

        // The true preference direction; every rank draws its own pairs from its own stream.
        sams::rng truth_gen(1, 0), data(2, static_cast<std::uint64_t>(rank) + 1);
        std::vector<double> truth(D), theta(D, 0.0), grad(D);
        for (auto& t : truth) t = truth_gen.normal();

        std::vector<float> a_w(local), a_l(local), zeros(local, 0.0f), ctx(local * D);
        std::vector<double> f_w(local * D), f_l(local * D);
        sams::decision<float> d;
        for (std::size_t step = 0; step < o.steps; ++step) {
            for (std::size_t i = 0; i < local; ++i) {
                double s_w = 0, s_l = 0;
                for (std::size_t j = 0; j < D; ++j) {
                    f_w[i * D + j] = data.normal();
                    f_l[i * D + j] = data.normal();
                    s_w += truth[j] * f_w[i * D + j];
                    s_l += truth[j] * f_l[i * D + j];
                }
                if (s_w < s_l)
                    std::swap_ranges(f_w.begin() + long(i * D), f_w.begin() + long((i + 1) * D),
                                     f_l.begin() + long(i * D));  // the preferred one is "chosen"
                double p_w = 0, p_l = 0;
                for (std::size_t j = 0; j < D; ++j) {
                    p_w += theta[j] * f_w[i * D + j];
                    p_l += theta[j] * f_l[i * D + j];
                    ctx[i * D + j] = static_cast<float>(f_w[i * D + j] - f_l[i * D + j]);
                }
                a_w[i] = static_cast<float>(p_w);
                a_l[i] = static_cast<float>(p_l);
            }
            sams::pair_batch<float> batch{.policy_chosen = a_w,
                                          .policy_rejected = a_l,
                                          .reference_chosen = zeros,
                                          .reference_rejected = zeros,
                                          .contexts = {ctx.data(), local, D}};
            sched.step(batch, d);  // this rank's part of the one global decision

            // Local gradient of Σ_local w_i ℓ_i; the sum over ranks is the global gradient.
            std::fill(grad.begin(), grad.end(), 0.0);
            for (const std::size_t i : d.selected)
                for (std::size_t j = 0; j < D; ++j)
                    grad[j] +=
                        d.d_policy_chosen[i] * f_w[i * D + j] + d.d_policy_rejected[i] * f_l[i * D + j];
            MPI_Allreduce(MPI_IN_PLACE, grad.data(), static_cast<int>(D), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
            for (std::size_t j = 0; j < D; ++j) theta[j] -= 0.5 * grad[j];

            if (rank == 0 && (step % 20 == 0 || step + 1 == o.steps))
                std::printf("step %4zu  loss %.4f  reward accuracy %.3f  selected on rank 0: %zu of %zu\n",
                            step, d.metrics.batch_loss, d.metrics.reward_accuracy, d.selected.size(), local);
        }
        // Replicated parameters must agree bit for bit.
        std::vector<double> theta0 = theta;
        MPI_Bcast(theta0.data(), static_cast<int>(D), MPI_DOUBLE, 0, MPI_COMM_WORLD);
        int same = std::memcmp(theta0.data(), theta.data(), D * sizeof(double)) == 0;
        MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
        double cos = 0, nt = 0, nh = 0;
        for (std::size_t j = 0; j < D; ++j) {
            cos += theta[j] * truth[j];
            nt += truth[j] * truth[j];
            nh += theta[j] * theta[j];
        }
        if (rank == 0)
            std::printf(
                "%d ranks, global batch %zu: cos(theta, truth) = %.3f, parameters identical on all ranks: "
                "%s\n",
                ranks, B, cos / std::sqrt(nt * nh + 1e-300), same ? "yes" : "no");
        status = same ? 0 : 1;
    } catch (const sams::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        status = 1;
    }
    MPI_Finalize();
    return status;
}
