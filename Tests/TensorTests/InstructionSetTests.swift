import CKernels
import Foundation
import Tensor
import TestSupport
import XCTest

extension XCTestCase {
    /// Runs `body` with the kernels forced onto `level`; skips (naming the CPU flag that is missing)
    /// when this CPU cannot run that path, so a skipped path is never mistaken for a passed one.
    func onPath(_ level: InstructionSet, _ body: (InstructionSet) throws -> Void) throws {
        try skipUnlessCPU(missing: level.missingFeature, "\(level) path")
        try InstructionSet.with(level) {
            XCTAssertEqual(InstructionSet.active, level)
            try body(level)
        }
    }
}

/// cpu_features.c against the kernel's own account of the CPU (/proc/cpuinfo), and the forcing used
/// by every per-path test.
final class InstructionSetTests: XCTestCase {
    func testFeaturesMatchProcCPUInfo() throws {
        // Linux on x86-64 (the only target): /proc/cpuinfo and its flags line are always there.
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try XCTUnwrap(info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }), "/proc/cpuinfo lists no flags")
        let colon = try XCTUnwrap(line.firstIndex(of: ":"), "/proc/cpuinfo flags line without a colon")
        let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        for index in 0..<HP_CPU_FEATURE_COUNT.rawValue {
            let name = String(cString: hp_cpu_feature_name(hp_cpu_feature(rawValue: index)))
            XCTAssertEqual(InstructionSet.cpuHas(name), flags.contains(name), "\(name): CPUID+XGETBV vs /proc/cpuinfo")
        }
        let model = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) }
        if let model { XCTAssertEqual(InstructionSet.cpuModel, model) }
        XCTAssertFalse(InstructionSet.cpuHas("no-such-flag"))
    }

    func testLevelsAndForcing() {
        let best = InstructionSet.supported
        XCTAssertEqual(best >= .avx2, InstructionSet.cpuHas("avx2") && InstructionSet.cpuHas("fma"))
        XCTAssertEqual(best >= .avx512, ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(InstructionSet.cpuHas)
                       && best >= .avx2)
        for level in InstructionSet.allCases {
            XCTAssertEqual(level.missingFeature == nil, level <= best, "\(level)")
            let before = InstructionSet.active
            InstructionSet.with(level) { XCTAssertEqual(InstructionSet.active, min(level, best)) }
            XCTAssertEqual(InstructionSet.active, before, "restored after \(level)")
        }
        XCTAssertNil(InstructionSet.portable.missingFeature)
        XCTAssertTrue(InstructionSet.summary.contains("kernel path \(InstructionSet.active)"))
    }
}
