import XCTest

extension XCTestCase {
    /// The one skip the suite allows: this machine's CPU lacks an instruction set a kernel path
    /// needs (`missing` names the CPU flag; nil runs the test). `make test` (scripts/run-tests) fails
    /// the run on any other skip, so a missing file, binary or model is a failure, never a skip.
    public func skipUnlessCPU(missing: String?, _ what: String) throws {
        if let missing { throw XCTSkip("\(what) not run: CPU lacks \(missing)") }
    }
}
