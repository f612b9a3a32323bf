// Vectorised elementwise math. libm's expf is a call per element and does not vectorise; the
// softmax of a 1024-token ViT layer alone needs ~12 M exponentials, so exp is written here on
// SIMD8 (one AVX register) with Cephes' range reduction and polynomial (error ≈ 1 ulp).

public typealias Float8 = SIMD8<Float>

/// e^x on eight lanes.
@inlinable @inline(__always)
public func exp8(_ v: Float8) -> Float8 {
    // Constants are local literals: globals would cost a lazy-initialisation check per call.
    // Clamped so that 2ⁿ stays a normal float (n in -126...127); e^-87 is far below any softmax weight that matters.
    let expHigh = Float8(repeating: 88.0), expLow = Float8(repeating: -87.0)
    let log2e = Float8(repeating: 1.44269504088896341)
    let ln2High = Float8(repeating: 0.693359375), ln2Low = Float8(repeating: -2.12194440e-4)
    // 1.5 · 2²³: adding it rounds to the nearest integer and leaves that integer in the low mantissa bits.
    let roundingMagic = Float8(repeating: 12582912.0)
    // Masked replace compiles to compare + blend; the generic clamped/pointwiseMin are not inlined.
    var x = v
    x.replace(with: expLow, where: x .< expLow)
    x.replace(with: expHigh, where: x .> expHigh)
    let shifted = x * log2e + roundingMagic
    let n = shifted - roundingMagic
    var r = x - n * ln2High
    r = r - n * ln2Low
    let r2 = r * r
    var p = Float8(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r2 + r + 1
    // 2ⁿ: the integer n sits in the low bits of `shifted`; move it into the exponent field.
    let nBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(roundingMagic, to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: Float8.self)
    return p * scale
}

/// e^x for one value, same polynomial as the vector form (so tails agree with bodies).
@inlinable @inline(__always)
public func exp1(_ x: Float) -> Float { exp8(Float8(repeating: x))[0] }

@inlinable @inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Float8 { UnsafeRawPointer(p).loadUnaligned(as: Float8.self) }

@inlinable @inline(__always)
func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self) }

/// Applies `body` to `count` floats at `p`, eight at a time; the tail goes through a padded vector.
@inlinable @inline(__always)
func mapInPlace(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ body: (Float8) -> Float8) {
    var i = 0
    while i + 8 <= count {
        store8(body(load8(p + i)), p + i)
        i += 8
    }
    if i < count {
        var tail = Float8(repeating: 0)
        for k in 0..<(count - i) { tail[k] = p[i + k] }
        let out = body(tail)
        for k in 0..<(count - i) { p[i + k] = out[k] }
    }
}

/// Sum of `count` floats.
@inlinable @inline(__always)
func sum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = Float8(repeating: 0)
    var i = 0
    while i + 8 <= count {
        acc += load8(p + i)
        i += 8
    }
    var s = acc.sum()
    while i < count {
        s += p[i]
        i += 1
    }
    return s
}

/// Largest of `count` floats (count ≥ 1).
@inlinable @inline(__always)
func maximum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    if count >= 8 {
        // Three independent chains: a single compare-and-blend chain is latency-bound.
        var acc = load8(p)
        i = 8
        if count >= 32 {
            var b = acc, c = acc, d = acc
            while i + 24 <= count {
                let v0 = load8(p + i), v1 = load8(p + i + 8), v2 = load8(p + i + 16)
                b.replace(with: v0, where: v0 .> b)
                c.replace(with: v1, where: v1 .> c)
                d.replace(with: v2, where: v2 .> d)
                i += 24
            }
            acc.replace(with: b, where: b .> acc)
            c.replace(with: d, where: d .> c)
            acc.replace(with: c, where: c .> acc)
        }
        while i + 8 <= count {
            let v = load8(p + i)
            acc.replace(with: v, where: v .> acc)
            i += 8
        }
        m = acc.max()
    }
    while i < count {
        m = max(m, p[i])
        i += 1
    }
    return m
}
