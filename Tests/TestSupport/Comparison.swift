import XCTest

/// max |a − b| / max |b|; infinity when the lengths differ (so any bound fails).
public func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    let scale = max(b.reduce(0) { max($0, abs($1)) }, 1e-12)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
}

/// max |a − b|; infinity when the lengths differ.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// `zip` for comparing two sequences element by element: a length mismatch is a failure, never a
/// comparison silently cut to the shorter one.
public func zipSameLength<A: Collection, B: Collection>(_ a: A, _ b: B, _ context: @autoclosure () -> String = "",
                                                        file: StaticString = #filePath, line: UInt = #line) -> Zip2Sequence<A, B> {
    XCTAssertEqual(a.count, b.count, "lengths differ before a zip \(context())", file: file, line: line)
    return zip(a, b)
}
