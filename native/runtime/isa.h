// Instruction-set detection and the active kernel table.
#pragma once
#include <string>
#include "../cpu/kernels.h"

namespace tk {

bool cpu_supports(const std::string& isa);  // "scalar" | "avx2" | "avx512"
std::string best_isa();
// Active table: TUNEKIT_ISA at load, else the best supported.
const KernelTable& kt();
// Switch the active ISA; returns an error message, empty on success.
std::string set_isa(const std::string& isa);
const char* active_isa();

}  // namespace tk
