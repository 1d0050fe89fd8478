//! The bilinear and bicubic samplers of [`super::ops::affine`], 8 output pixels at a time
//! with AVX2 gathers. Every lane does the float operations of the pixel-by-pixel sampler
//! in the same order, so the bytes are the same (tests/it/augment_exact.rs); nearest
//! neighbour stays pixel by pixel.
use super::ops::{CUBIC_A, Interpolation, Source};

/// Samples the first multiple of 8 pixels of an output row into `row` (`C` channels per
/// pixel) at `points` (x and y of every pixel) and returns how many it did: 0 without AVX2
/// or for nearest neighbour.
pub(super) fn sample_row<const C: usize>(
    source: &Source,
    points: &(Vec<f32>, Vec<f32>),
    interpolation: Interpolation,
    fill: &[u8; C],
    row: &mut [u8],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if interpolation != Interpolation::Nearest && std::arch::is_x86_feature_detected!("avx2") {
        assert!(source.pixels.len() >= source.width * source.height * C + 3, "gathers read 3 bytes past a pixel");
        // SAFETY: the CPU has AVX2 (checked above) and the source is padded (asserted).
        return unsafe { x86::sample_row::<C>(source, points, interpolation == Interpolation::Bicubic, fill, row) };
    }
    let _ = (source, points, interpolation, fill, row);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CUBIC_A, Source};

    /// Clamped pixel offsets (y · stride + x · C) of 8 taps.
    #[target_feature(enable = "avx2")]
    fn offsets(x: __m256i, y: __m256i, last: (__m256i, __m256i), steps: (__m256i, __m256i)) -> __m256i {
        let zero = _mm256_setzero_si256();
        let x = _mm256_min_epi32(_mm256_max_epi32(x, zero), last.0);
        let y = _mm256_min_epi32(_mm256_max_epi32(y, zero), last.1);
        _mm256_add_epi32(_mm256_mullo_epi32(y, steps.1), _mm256_mullo_epi32(x, steps.0))
    }

    /// The 4 bytes at each of 8 offsets (the pixel's channels, then what follows).
    ///
    /// # Safety
    /// Every offset + 4 must lie within `pixels`.
    #[target_feature(enable = "avx2")]
    unsafe fn gather(pixels: &[u8], offsets: __m256i) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { _mm256_i32gather_epi32::<1>(pixels.as_ptr().cast(), offsets) }
    }

    /// Channel `ch` of gathered pixels, as floats.
    #[target_feature(enable = "avx2")]
    fn channel(pixels: __m256i, ch: usize) -> __m256 {
        let shifted = _mm256_srlv_epi32(pixels, _mm256_set1_epi32(8 * ch as i32));
        _mm256_cvtepi32_ps(_mm256_and_si256(shifted, _mm256_set1_epi32(0xff)))
    }

    /// ⌊v⌋ for v ≥ −1, as the scalar `floor` (other lanes: some integer, clamped later).
    #[target_feature(enable = "avx2")]
    fn floor(v: __m256) -> __m256i {
        _mm256_sub_epi32(_mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_set1_ps(1.0))), _mm256_set1_epi32(1))
    }

    /// The scalar `cubic_weights`, lane by lane, in its order of operations.
    #[target_feature(enable = "avx2")]
    fn cubic_weights(t: __m256) -> [__m256; 4] {
        let s = _mm256_set1_ps;
        let (mul, add, sub) = (_mm256_mul_ps, _mm256_add_ps, _mm256_sub_ps);
        let a = CUBIC_A;
        // ((A + 2) x − (A + 3)) x x + 1
        let near = |x| add(mul(mul(sub(mul(s(a + 2.0), x), s(a + 3.0)), x), x), s(1.0));
        // ((A x − 5A) x + 8A) x − 4A
        let far = |x| sub(mul(add(mul(sub(mul(s(a), x), s(5.0 * a)), x), s(8.0 * a)), x), s(4.0 * a));
        [far(add(s(1.0), t)), near(t), near(sub(s(1.0), t)), far(sub(s(2.0), t))]
    }

    /// (v + 0.5) clamped to [0, 255], truncated: the scalar `round`.
    #[target_feature(enable = "avx2")]
    fn round(v: __m256) -> __m256i {
        let v = _mm256_add_ps(v, _mm256_set1_ps(0.5));
        _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0)))
    }

    /// See [`super::sample_row`].
    ///
    /// # Safety
    /// `source.pixels` has 3 bytes after its last pixel.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sample_row<const C: usize>(
        source: &Source,
        (xs, ys): &(Vec<f32>, Vec<f32>),
        bicubic: bool,
        fill: &[u8; C],
        row: &mut [u8],
    ) -> usize {
        let (w, h) = (source.width, source.height);
        let last = (_mm256_set1_epi32(w as i32 - 1), _mm256_set1_epi32(h as i32 - 1));
        let steps = (_mm256_set1_epi32(C as i32), _mm256_set1_epi32((w * C) as i32));
        let (wf, hf, zero) = (_mm256_set1_ps(w as f32), _mm256_set1_ps(h as f32), _mm256_setzero_ps());
        let done = w / 8 * 8;
        for x in (0..done).step_by(8) {
            // SAFETY: x + 8 ≤ w = the lengths of xs and ys.
            let (px, py) = unsafe { (_mm256_loadu_ps(xs.as_ptr().add(x)), _mm256_loadu_ps(ys.as_ptr().add(x))) };
            let inside = _mm256_and_ps(
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(px, zero), _mm256_cmp_ps::<_CMP_LT_OQ>(px, wf)),
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(py, zero), _mm256_cmp_ps::<_CMP_LT_OQ>(py, hf)),
            );
            let half = _mm256_set1_ps(0.5);
            let (fx, fy) = (_mm256_sub_ps(px, half), _mm256_sub_ps(py, half));
            let (x0, y0) = (floor(fx), floor(fy));
            let (dx, dy) = (_mm256_sub_ps(fx, _mm256_cvtepi32_ps(x0)), _mm256_sub_ps(fy, _mm256_cvtepi32_ps(y0)));
            let mut values = [_mm256_setzero_si256(); C];
            if bicubic {
                let (wx, wy) = (cubic_weights(dx), cubic_weights(dy));
                let mut acc = [_mm256_setzero_ps(); C];
                for (j, wr) in wy.iter().enumerate() {
                    let yj = _mm256_add_epi32(y0, _mm256_set1_epi32(j as i32 - 1));
                    let mut row_acc = [_mm256_setzero_ps(); C];
                    for (i, wc) in wx.iter().enumerate() {
                        let xi = _mm256_add_epi32(x0, _mm256_set1_epi32(i as i32 - 1));
                        // SAFETY: clamped offsets of pixels; the source is padded (caller).
                        let taps = unsafe { gather(source.pixels, offsets(xi, yj, last, steps)) };
                        for (ch, acc) in row_acc.iter_mut().enumerate() {
                            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(*wc, channel(taps, ch)));
                        }
                    }
                    for ch in 0..C {
                        acc[ch] = _mm256_add_ps(acc[ch], _mm256_mul_ps(*wr, row_acc[ch]));
                    }
                }
                for ch in 0..C {
                    values[ch] = round(acc[ch]);
                }
            } else {
                let one = _mm256_set1_ps(1.0);
                let (rx, ry) = (_mm256_sub_ps(one, dx), _mm256_sub_ps(one, dy));
                let weights =
                    [_mm256_mul_ps(rx, ry), _mm256_mul_ps(dx, ry), _mm256_mul_ps(rx, dy), _mm256_mul_ps(dx, dy)];
                let (x1, y1) = (_mm256_add_epi32(x0, _mm256_set1_epi32(1)), _mm256_add_epi32(y0, _mm256_set1_epi32(1)));
                // SAFETY: clamped offsets of pixels; the source is padded (caller).
                let taps = unsafe {
                    [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
                        .map(|(x, y)| gather(source.pixels, offsets(x, y, last, steps)))
                };
                for (ch, value) in values.iter_mut().enumerate() {
                    // The scalar sum starts at −0.0: adding it to the first product changes nothing.
                    let mut sum = _mm256_mul_ps(weights[0], channel(taps[0], ch));
                    for k in 1..4 {
                        sum = _mm256_add_ps(sum, _mm256_mul_ps(weights[k], channel(taps[k], ch)));
                    }
                    *value = round(sum);
                }
            }
            let mut lanes = [[0i32; 8]; C];
            let mut inside_lanes = [0f32; 8];
            // SAFETY: stores of 8 lanes into arrays of 8.
            unsafe {
                for ch in 0..C {
                    _mm256_storeu_si256(lanes[ch].as_mut_ptr().cast(), values[ch]);
                }
                _mm256_storeu_ps(inside_lanes.as_mut_ptr(), inside);
            }
            for (lane, pixel) in row[x * C..(x + 8) * C].chunks_exact_mut(C).enumerate() {
                let outside = inside_lanes[lane].to_bits() == 0;
                for ch in 0..C {
                    pixel[ch] = if outside { fill[ch] } else { lanes[ch][lane] as u8 };
                }
            }
        }
        done
    }
}
