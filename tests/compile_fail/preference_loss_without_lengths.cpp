// A user loss that does not say whether it reads response lengths does not model
// sams::preference_loss: evaluate_loss could not tell whether a batch without lengths is valid.
// expect: needs_lengths\(\)
// requires-header: sams/loss/concept.hpp
#include <sams/loss/concept.hpp>

struct loss_without_lengths {
    sams::pair_loss<float> operator()(const sams::pair_input<float>& p) const {
        const float h = p.policy_chosen - p.policy_rejected;
        return {h * h, 2.0f * h, -2.0f * h, p.policy_chosen, p.policy_rejected};
    }
    [[nodiscard]] bool needs_reference() const { return false; }
#ifndef SAMS_COMPILE_FAIL
    [[nodiscard]] bool needs_lengths() const { return false; }
#endif
};

static_assert(sams::preference_loss<loss_without_lengths, float>);

int main() { return 0; }
