import TestSupport
import XCTest
import Pipeline
import Vision
@testable import Prune

/// The overlay's blends, pixel by pixel, on synthetic frames (exact integer arithmetic).
final class OverlayTests: XCTestCase {
    /// A 4×4 picture on a 2×2 grid: each token covers a 2×2 block of pixels.
    func picture(_ pixel: (UInt8, UInt8, UInt8)) -> [UInt8] {
        Array((0..<16).flatMap { _ in [pixel.0, pixel.1, pixel.2] })
    }

    func selection(_ roles: [TokenRole?]) -> Selection {
        Selection(grid: TokenGrid(rows: 2, cols: 2), roleByToken: roles)
    }

    func pixel(_ rgb: [UInt8], x: Int, y: Int, width: Int = 4) -> [UInt8] {
        Array(rgb[(y * width + x) * 3..<(y * width + x) * 3 + 3])
    }

    func testExactValuesForEachRoleAndPrunedCells() throws {
        let source = picture((100, 50, 200))
        let drawn = try Overlay.draw(rgb: source, width: 4, height: 4, selection: selection([.anchor, .buffer, .register, nil]))
        // Kept: (s·144 + tint·112 + 128) >> 8; pruned: (s·80 + 128) >> 8.
        for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] { XCTAssertEqual(pixel(drawn, x: x, y: y), [168, 124, 113]) }
        for (x, y) in [(2, 0), (3, 1)] { XCTAssertEqual(pixel(drawn, x: x, y: y), [168, 46, 130]) }
        for (x, y) in [(0, 2), (1, 3)] { XCTAssertEqual(pixel(drawn, x: x, y: y), [56, 129, 224]) }
        for (x, y) in [(2, 2), (3, 3)] { XCTAssertEqual(pixel(drawn, x: x, y: y), [31, 16, 63]) }
    }

    func testAnchorTintsTowardYellowPrunedDarkensKeptKeepsStructure() throws {
        // A gray gradient: every pixel different.
        let source: [UInt8] = (0..<48).map { (i: Int) -> UInt8 in UInt8(i / 3 * 16) }
        let drawn = try Overlay.draw(rgb: source, width: 4, height: 4, selection: selection([.anchor, nil, nil, .kept]))
        for y in 0..<4 {
            for x in 0..<4 {
                let s = pixel(source, x: x, y: y), d = pixel(drawn, x: x, y: y)
                let token = (y / 2) * 2 + x / 2
                if token == 0 {
                    // Toward yellow: red and green up, blue not up.
                    XCTAssertGreaterThan(d[0], s[0]); XCTAssertGreaterThan(d[1], s[1]); XCTAssertLessThanOrEqual(d[2], s[2])
                    XCTAssertGreaterThan(Int(d[0]) - Int(d[2]), 100)
                } else if token == 1 || token == 2 {
                    XCTAssertTrue(zipSameLength(d, s).allSatisfy { (a: UInt8, b: UInt8) -> Bool in a <= b / 2 + 1 }, "pruned (\(x), \(y)) darker: \(d) vs \(s)")
                }
            }
        }
        // Structure: the gradient inside the kept cell survives (brighter source, brighter result).
        XCTAssertLessThan(pixel(drawn, x: 2, y: 2)[0], pixel(drawn, x: 3, y: 3)[0])
        XCTAssertLessThan(pixel(drawn, x: 0, y: 0)[1], pixel(drawn, x: 1, y: 1)[1])
    }

    func testGridLinesMarkCellStartsAndCellsMapOverTheWholeFrame() throws {
        // 6×3 picture, 2×3 grid: cells of 2 columns and 1.5 rows: rows 0–1 belong to row 0, row 2 to row 1.
        let width = 6, height = 3
        let source = [UInt8](repeating: 0, count: width * height * 3)
        let roles: [TokenRole?] = [nil, nil, nil, nil, nil, .register]
        let drawn = try Overlay.draw(rgb: source, width: width, height: height,
                                     selection: Selection(grid: TokenGrid(rows: 2, cols: 3), roleByToken: roles),
                                     style: OverlayStyle(gridLines: true))
        XCTAssertEqual(pixel(drawn, x: 0, y: 0, width: width), [0, 0, 0], "the frame's edge is not a line")
        XCTAssertEqual(pixel(drawn, x: 2, y: 0, width: width), [96, 96, 96], "(255·96 + 128) >> 8 on a column start")
        XCTAssertEqual(pixel(drawn, x: 1, y: 1, width: width), [0, 0, 0])
        // (5, 2): token 5, register (0 → (230·112 + 128) >> 8 = 101 green), row start → line blend.
        XCTAssertEqual(pixel(drawn, x: 5, y: 2, width: width), [96, 159, 166])
        XCTAssertEqual(pixel(drawn, x: 3, y: 2, width: width), [96, 96, 96], "pruned black under a line")
    }

    func testBadInputsThrowOneLine() {
        XCTAssertThrowsError(try Overlay.draw(rgb: [1, 2], width: 4, height: 4, selection: selection([nil, nil, nil, nil]))) {
            XCTAssertTrue("\($0)".contains("do not make a 4x4"), "\($0)")
        }
        XCTAssertThrowsError(try Overlay.draw(rgb: picture((0, 0, 0)).prefix(3).map { $0 }, width: 1, height: 1,
                                              selection: selection([nil, nil, nil, nil]))) {
            XCTAssertTrue("\($0)".contains("does not fit"), "\($0)")
        }
    }

    func testAnyResFramesDrawTheBaseAndEachCropOverItsOwnRectangle() throws {
        let source = picture((100, 50, 200))
        // One 1×1 crop over the right half, reaching past the frame's bottom (padding is clipped).
        let crop = Selection(grid: TokenGrid(rows: 1, cols: 1), roleByToken: [.anchor])
        let views: [(place: ViewPlace, selection: Selection)] = [
            (.base, selection([nil, nil, nil, nil])),
            (.crop(row: 0, col: 0, rect: PixelRect(x: 2, y: 0, width: 2, height: 8)), crop),
        ]
        let drawn = try Overlay.draw(rgb: source, width: 4, height: 4, views: views)
        XCTAssertEqual(drawn.width, 8)
        XCTAssertEqual(drawn.rgb.count, 8 * 4 * 3)
        for y in 0..<4 {
            for x in 0..<4 {
                // Left panel: the base view over the whole frame, every token pruned.
                XCTAssertEqual(pixel(drawn.rgb, x: x, y: y, width: 8), [31, 16, 63])
                // Right panel: the crop's pixels tinted as an anchor, the rest untouched.
                XCTAssertEqual(pixel(drawn.rgb, x: 4 + x, y: y, width: 8), x >= 2 ? [168, 124, 113] : [100, 50, 200])
            }
        }
        // One whole-frame view is the plain overlay.
        let single = try Overlay.draw(rgb: source, width: 4, height: 4, views: [(.frame, selection([.anchor, nil, nil, nil]))])
        XCTAssertEqual(single.width, 4)
        XCTAssertEqual(single.rgb, try Overlay.draw(rgb: source, width: 4, height: 4, selection: selection([.anchor, nil, nil, nil])))
    }
}
