import Foundation
import XCTest

extension XCTestCase {
    /// A fresh directory for this test's files, removed when the test ends however it ends (a
    /// failed assertion, a thrown error): removal is registered before anything is written into it.
    public func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hv-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
