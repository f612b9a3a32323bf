// OpenBLAS picks its kernels when the library loads. On CPUs with AVX-512 the SkylakeX kernels
// are much faster than what a generic build may pick, so the executables call
// `BLASRuntime.configure()` first thing: it re-executes the process once with
// OPENBLAS_CORETYPE=SkylakeX when the kernels' path is avx512 (cpu_features.c decides: the CPU
// has it and HIPRUNE_ISA does not lower it) and the user has not chosen a core type.
// On AVX2-only machines (e.g. AMD Zen 2/3) it does nothing: SkylakeX kernels would crash there.
import Foundation

public enum BLASRuntime {
    public static let variable = "OPENBLAS_CORETYPE"

    /// The core type to force, or nil to leave OpenBLAS alone. Pure: the whole decision.
    public static func coreTypeOverride(path: InstructionSet, environment: [String: String]) -> String? {
        if environment[variable] != nil { return nil }  // the user's own setting wins
        return path >= .avx512 ? "SkylakeX" : nil
    }

    /// Call before any BLAS use. Returns only when no re-exec was needed (or it failed, in which
    /// case the process carries on with OpenBLAS's own choice).
    public static func configure() {
        guard let core = coreTypeOverride(path: InstructionSet.active,
                                          environment: ProcessInfo.processInfo.environment) else { return }
        setenv(variable, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
