import XCTest

/// max |a − b| / max |b| (the comparison of every vision parity test); counts must match.
func relativeError(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    guard a.count == b.count else { return .infinity }
    let scale = max(b.reduce(0) { max($0, abs($1)) }, 1e-12)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
}

/// max |a − b|; counts must match.
func maxAbsDiff(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
