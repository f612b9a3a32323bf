// The kernels' instruction-set path seen from Swift. The decision itself is made in one place,
// CKernels/cpu_features.c (CPUID, HIPRUNE_ISA); this is its typed view for the CLI, benchmarks
// and tests.
import CKernels
import Foundation

public enum InstructionSet: Int, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case portable = 0, avx2 = 1, avx512 = 2

    /// The environment variable that lowers the path: portable, avx2 or avx512.
    public static let variable = "HIPRUNE_ISA"

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    var c: hp_isa { hp_isa(rawValue: UInt32(rawValue)) }

    /// "portable", "avx2", "avx512" (the values HIPRUNE_ISA takes).
    public var description: String { String(cString: hp_isa_name(c)) }

    /// The path kernels take now.
    public static var active: InstructionSet { InstructionSet(rawValue: Int(hp_isa_active().rawValue)) ?? .portable }

    /// The best path this CPU supports.
    public static var supported: InstructionSet { InstructionSet(rawValue: Int(hp_isa_supported().rawValue)) ?? .portable }

    /// The first CPU flag this path needs that the CPU lacks ("avx512f", …), nil when it has them all.
    public var missingFeature: String? { hp_isa_missing_feature(c).map { String(cString: $0) } }

    /// The CPU's brand string.
    public static var cpuModel: String { String(cString: hp_cpu_model()) }

    /// Whether the CPU has a feature named as in /proc/cpuinfo ("avx512_bf16", "amx_tile", …).
    public static func cpuHas(_ name: String) -> Bool {
        for index in 0..<HP_CPU_FEATURE_COUNT.rawValue {
            let feature = hp_cpu_feature(rawValue: index)
            if String(cString: hp_cpu_feature_name(feature)) == name { return hp_cpu_has(feature) != 0 }
        }
        return false
    }

    /// The CPU's features among those the kernels know, space-separated.
    public static var cpuFeatures: String {
        (0..<HP_CPU_FEATURE_COUNT.rawValue).compactMap { index -> String? in
            let feature = hp_cpu_feature(rawValue: index)
            return hp_cpu_has(feature) != 0 ? String(cString: hp_cpu_feature_name(feature)) : nil
        }.joined(separator: " ")
    }

    /// One line for benchmark headers: model, features, and the path in use.
    public static var summary: String { "CPU \(cpuModel) [\(cpuFeatures)], kernel path \(active)" }

    /// Throws when HIPRUNE_ISA is set to something other than portable, avx2 or avx512.
    public static func validateEnvironment() throws(InstructionSetError) {
        if hp_isa_requested() < 0 { throw InstructionSetError.unknownLevel(getenvString(variable) ?? "") }
    }

    /// Runs `body` with kernels forced onto `level` (lowered to what the CPU supports), then restores
    /// the previous path. Process-wide; for tests and benchmarks.
    public static func with<R, E: Error>(_ level: InstructionSet, _ body: () throws(E) -> R) throws(E) -> R {
        let previous = hp_isa_set(level.c)
        defer { hp_isa_set(previous) }
        return try body()
    }
}

public enum InstructionSetError: Error, Equatable, CustomStringConvertible {
    case unknownLevel(String)

    public var description: String {
        switch self {
        case .unknownLevel(let value):
            return "HIPRUNE_ISA=\(value): expected portable, avx2 or avx512"
        }
    }
}

private func getenvString(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
