//! Image operations on 8-bit images, deterministic given their parameters (the random
//! draws live in [`super::pipeline`]). Colour semantics follow PIL, which torchvision and
//! timm use, so that augmentation strengths mean what they mean in the reference.
//!
//! On 1-channel (gray) images the colour operations act as on a gray RGB image: hue and
//! saturation changes, Color (saturation) enhancement and grayscale conversion leave it
//! unchanged; brightness, contrast, sharpness, solarize, posterize, equalize, autocontrast
//! and invert act on its one channel.
use fast_image_resize as fr;

use crate::data::Image;

/// Mirror left–right.
pub fn hflip(mut img: Image) -> Image {
    let c = img.channels;
    for row in img.pixels.chunks_exact_mut(img.width * c) {
        match c {
            1 => row.reverse(),
            3 => row.as_chunks_mut::<3>().0.reverse(),
            _ => panic!("images have 1 or 3 channels, not {c}"),
        }
    }
    img
}

/// The `width × height` region at (`left`, `top`), which must lie inside the image.
pub fn crop(img: &Image, left: usize, top: usize, width: usize, height: usize) -> Image {
    assert!(left + width <= img.width && top + height <= img.height, "crop box outside the image");
    let c = img.channels;
    let mut out = Vec::with_capacity(width * height * c);
    for y in top..top + height {
        let start = (y * img.width + left) * c;
        out.extend_from_slice(&img.pixels[start..start + width * c]);
    }
    Image::new(width, height, c, out)
}

/// Adds `pad` pixels of `fill` on every side.
pub fn pad(img: &Image, pad: usize, fill: u8) -> Image {
    let (w, c) = (img.width + 2 * pad, img.channels);
    let mut out = Image::filled(w, img.height + 2 * pad, c, fill);
    for y in 0..img.height {
        let src = &img.pixels[y * img.width * c..(y + 1) * img.width * c];
        let start = ((y + pad) * w + pad) * c;
        out.pixels[start..start + img.width * c].copy_from_slice(src);
    }
    out
}

/// Resizes the `(left, top, width, height)` region of `img` to `out_width × out_height`
/// with PIL-style antialiased bilinear filtering (SIMD, via fast_image_resize).
pub fn resized_crop(img: &Image, region: (f64, f64, f64, f64), out_width: usize, out_height: usize) -> Image {
    let pixel_type = if img.channels == 3 { fr::PixelType::U8x3 } else { fr::PixelType::U8 };
    let src = fr::images::ImageRef::new(img.width as u32, img.height as u32, &img.pixels, pixel_type)
        .expect("image buffer matches its size");
    let mut dst = fr::images::Image::new(out_width as u32, out_height as u32, pixel_type);
    let (left, top, width, height) = region;
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(left, top, width, height);
    fr::Resizer::new().resize(&src, &mut dst, &options).expect("same pixel types");
    Image::new(out_width, out_height, img.channels, dst.into_vec())
}

/// Resizes the whole image.
pub fn resize(img: &Image, width: usize, height: usize) -> Image {
    resized_crop(img, (0.0, 0.0, img.width as f64, img.height as f64), width, height)
}

/// Resampling of the geometric RandAugment / AutoAugment operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
}

/// Keys' cubic convolution parameter a: −0.5, PIL's bicubic.
pub(super) const CUBIC_A: f32 = -0.5;

/// Keys' cubic convolution weights (a = [`CUBIC_A`]) of the four taps at offsets −1, 0, 1,
/// 2 from a sample point `t` ∈ [0, 1) past the second tap.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = CUBIC_A;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; // |x| < 1
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; // 1 ≤ |x| < 2
    [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Affine warp, as PIL's `Image.transform(AFFINE, (a, b, c, d, e, f))`: output pixel (x, y)
/// samples the input at (a·x + b·y + c, d·x + e·y + f) (pixel centres at +0.5). Points
/// outside the input take `fill`.
pub fn affine(img: &Image, m: [f64; 6], interpolation: Interpolation, fill: &[u8]) -> Image {
    match img.channels {
        1 => affine_channels::<1>(img, m, interpolation, fill),
        3 => affine_channels::<3>(img, m, interpolation, fill),
        c => panic!("images have 1 or 3 channels, not {c}"),
    }
}

/// ⌊v⌋ for v ≥ −1, without a libm call (x86-64's baseline has no SSE4.1 `roundss`).
fn floor(v: f32) -> isize {
    (v + 1.0) as isize - 1
}

/// [`affine`] for `C` channels (a constant, so the per-channel loops unroll). Each row
/// first lists its sample points by running sums, as PIL steps them; with AVX2 most of
/// the row is then sampled 8 pixels at a time ([`super::affine_avx2`], the same
/// arithmetic), the rest pixel by pixel.
fn affine_channels<const C: usize>(img: &Image, m: [f64; 6], interpolation: Interpolation, fill: &[u8]) -> Image {
    let (w, h) = (img.width, img.height);
    // Three bytes of padding: a vector gather reads 4 bytes at a pixel's offset.
    let mut src = Vec::with_capacity(img.pixels.len() + 3);
    src.extend_from_slice(&img.pixels);
    src.extend_from_slice(&[0; 3]);
    let m = m.map(|v| v as f32);
    let fill: [u8; C] = std::array::from_fn(|ch| fill[ch]);
    let mut out = vec![0; img.pixels.len()];
    let mut points = (vec![0f32; w], vec![0f32; w]);
    for (y, row) in out.chunks_exact_mut(w * C).enumerate() {
        let yo = y as f32 + 0.5;
        let mut sx = m[0] * 0.5 + m[1] * yo + m[2];
        let mut sy = m[3] * 0.5 + m[4] * yo + m[5];
        for (px, py) in points.0.iter_mut().zip(points.1.iter_mut()) {
            (*px, *py) = (sx, sy);
            sx += m[0];
            sy += m[3];
        }
        let source = Source { pixels: &src, width: w, height: h };
        let done = super::affine_avx2::sample_row(&source, &points, interpolation, &fill, row);
        for x in done..w {
            row[x * C..(x + 1) * C].copy_from_slice(&source.sample(points.0[x], points.1[x], interpolation, &fill));
        }
    }
    Image::new(w, h, C, out)
}

/// The image an affine warp samples: interleaved pixels (with padding after them).
pub(super) struct Source<'a> {
    pub pixels: &'a [u8],
    pub width: usize,
    pub height: usize,
}

impl Source<'_> {
    /// The `C` channel values at point (`px`, `py`) (pixel centres at +0.5); points outside
    /// the image take `fill`.
    fn sample<const C: usize>(&self, px: f32, py: f32, interpolation: Interpolation, fill: &[u8; C]) -> [u8; C] {
        let (w, h, src) = (self.width, self.height, self.pixels);
        let stride = w * C;
        if !(0.0..w as f32).contains(&px) || !(0.0..h as f32).contains(&py) {
            return *fill;
        }
        // Offset of pixel (x, y), clamped to the image (only near the border).
        let at =
            |x: isize, y: isize| y.clamp(0, h as isize - 1) as usize * stride + x.clamp(0, w as isize - 1) as usize * C;
        let round = |v: f32| (v + 0.5).clamp(0.0, 255.0) as u8;
        match interpolation {
            Interpolation::Nearest => {
                let i = py as usize * stride + px as usize * C;
                std::array::from_fn(|ch| src[i + ch])
            }
            Interpolation::Bilinear => {
                let (fx, fy) = (px - 0.5, py - 0.5);
                let (x0, y0) = (floor(fx), floor(fy));
                let (dx, dy) = (fx - x0 as f32, fy - y0 as f32);
                let taps = [at(x0, y0), at(x0 + 1, y0), at(x0, y0 + 1), at(x0 + 1, y0 + 1)];
                let weights = [(1.0 - dx) * (1.0 - dy), dx * (1.0 - dy), (1.0 - dx) * dy, dx * dy];
                std::array::from_fn(|ch| round((0..4).map(|k| weights[k] * src[taps[k] + ch] as f32).sum()))
            }
            Interpolation::Bicubic => {
                let (fx, fy) = (px - 0.5, py - 0.5);
                let (x0, y0) = (floor(fx), floor(fy));
                let (dx, dy) = (fx - x0 as f32, fy - y0 as f32);
                let (wx, wy) = (cubic_weights(dx), cubic_weights(dy));
                let mut acc = [0f32; C];
                for (j, wr) in wy.iter().enumerate() {
                    let mut row_acc = [0f32; C];
                    for (i, wc) in wx.iter().enumerate() {
                        let k = at(x0 + i as isize - 1, y0 + j as isize - 1);
                        for ch in 0..C {
                            row_acc[ch] += wc * src[k + ch] as f32;
                        }
                    }
                    for ch in 0..C {
                        acc[ch] += wr * row_acc[ch];
                    }
                }
                acc.map(round)
            }
        }
    }
}

/// Rotation by `degrees` counter-clockwise about the centre (PIL's `rotate`).
pub fn rotate(img: &Image, degrees: f64, interpolation: Interpolation, fill: &[u8]) -> Image {
    let (cx, cy) = (img.width as f64 / 2.0, img.height as f64 / 2.0);
    let (sin, cos) = (-degrees.to_radians()).sin_cos();
    // Output → input: rotate by −angle (image y points down) about the centre.
    let (a, b, d, e) = (cos, sin, -sin, cos);
    let m = [a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy];
    affine(img, m, interpolation, fill)
}

/// Shear along x by `factor` (PIL AFFINE (1, factor, 0, 0, 1, 0)).
pub fn shear_x(img: &Image, factor: f64, interpolation: Interpolation, fill: &[u8]) -> Image {
    affine(img, [1.0, factor, 0.0, 0.0, 1.0, 0.0], interpolation, fill)
}

/// Shear along y by `factor` (PIL AFFINE (1, 0, 0, factor, 1, 0)).
pub fn shear_y(img: &Image, factor: f64, interpolation: Interpolation, fill: &[u8]) -> Image {
    affine(img, [1.0, 0.0, 0.0, factor, 1.0, 0.0], interpolation, fill)
}

/// Shift by `dx`, `dy` pixels (content moves left/up for positive values, as PIL).
pub fn translate(img: &Image, dx: f64, dy: f64, interpolation: Interpolation, fill: &[u8]) -> Image {
    affine(img, [1.0, 0.0, dx, 0.0, 1.0, dy], interpolation, fill)
}

/// Applies `f` to every value through a 256-entry table, in place.
fn map_pixels(mut img: Image, f: impl Fn(u8) -> u8) -> Image {
    let lut: [u8; 256] = std::array::from_fn(|v| f(v as u8));
    for p in &mut img.pixels {
        *p = lut[*p as usize];
    }
    img
}

/// Pixels per block of the channel-planar kernels below: a block's three channels are
/// split into arrays, transformed by straight-line code over whole arrays (which the
/// compiler turns into vector instructions; per-pixel code on interleaved RGB it cannot),
/// then interleaved back.
const BLOCK: usize = 64;

/// One block's red, green and blue values.
type Planes = [[i32; BLOCK]; 3];

/// The channel planes of up to [`BLOCK`] interleaved RGB pixels (the rest of the arrays 0).
#[inline(always)]
fn planes_of(block: &[u8]) -> Planes {
    let mut planes = [[0; BLOCK]; 3];
    for (k, px) in block.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            planes[ch][k] = px[ch] as i32;
        }
    }
    planes
}

/// A transform of one block's planes, applied by [`map_rgb_blocks`]. Implementations are
/// `#[inline(always)]` so that they are compiled into the function that dispatches on the
/// instruction set (a closure would be called from it, compiled for the baseline).
trait BlockKernel {
    /// Whether `apply` changes the planes (a kernel that only reads them skips the write-back).
    const WRITES: bool = true;
    fn apply(&mut self, planes: &mut Planes);
}

/// Applies `kernel` to every block of an RGB buffer, in place; it must leave values in
/// 0..=255. With AVX2 (checked at run time) the kernel is compiled for it: 8 lanes and
/// integer min/max where the x86-64 baseline has 4 lanes and neither.
fn map_rgb_blocks<K: BlockKernel>(pixels: &mut [u8], kernel: &mut K) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { map_rgb_blocks_avx2(pixels, kernel) };
    }
    map_rgb_blocks_here(pixels, kernel)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn map_rgb_blocks_avx2<K: BlockKernel>(pixels: &mut [u8], kernel: &mut K) {
    map_rgb_blocks_here(pixels, kernel)
}

/// [`map_rgb_blocks`] for the instruction set of its caller (inlined into it).
#[inline(always)]
fn map_rgb_blocks_here<K: BlockKernel>(pixels: &mut [u8], kernel: &mut K) {
    for block in pixels.chunks_mut(3 * BLOCK) {
        let mut planes = planes_of(block);
        kernel.apply(&mut planes);
        if !K::WRITES {
            continue;
        }
        for (k, px) in block.chunks_exact_mut(3).enumerate() {
            for ch in 0..3 {
                px[ch] = planes[ch][k] as u8;
            }
        }
    }
}

/// ITU-R 601-2 luma in PIL's 16-bit fixed point, as its `convert("L")`, of every pixel.
#[inline(always)]
fn luma(planes: &Planes) -> [i32; BLOCK] {
    let [r, g, b] = planes;
    std::array::from_fn(|k| ((r[k] as u32 * 19595 + g[k] as u32 * 38470 + b[k] as u32 * 7471 + 0x8000) >> 16) as i32)
}

struct ToGray;

impl BlockKernel for ToGray {
    #[inline(always)]
    fn apply(&mut self, planes: &mut Planes) {
        *planes = [luma(planes); 3];
    }
}

/// The gray version, with the same number of channels.
pub fn grayscale(mut img: Image) -> Image {
    if img.channels == 3 {
        map_rgb_blocks(&mut img.pixels, &mut ToGray);
    }
    img
}

/// `degenerate + factor · (value − degenerate)` in 8.8 fixed point, clipped: PIL's
/// ImageEnhance blend.
#[inline(always)]
fn blend_value(degenerate: i32, value: i32, factor: i32) -> i32 {
    ((degenerate * 256 + factor * (value - degenerate) + 128) >> 8).clamp(0, 255)
}

fn fixed_point(factor: f64) -> i32 {
    (factor * 256.0).round() as i32
}

/// Brightness: blend with black (factor 0 = black, 1 = unchanged).
pub fn brightness(img: Image, factor: f64) -> Image {
    map_pixels(img, |p| (p as f64 * factor).round().clamp(0.0, 255.0) as u8)
}

/// Sums the luma of the pixels it sees (padding pixels of a partial block are black:
/// luma 0, as 0x8000 >> 16 = 0), leaving them unchanged.
struct LumaSum(u64);

impl BlockKernel for LumaSum {
    const WRITES: bool = false;

    #[inline(always)]
    fn apply(&mut self, planes: &mut Planes) {
        self.0 += luma(planes).iter().sum::<i32>() as u64;
    }
}

/// Contrast: blend with the mean gray level (factor 0 = uniform gray, 1 = unchanged).
pub fn contrast(mut img: Image, factor: f64) -> Image {
    let sum = if img.channels == 1 {
        img.pixels.iter().map(|&p| p as u64).sum()
    } else {
        let mut luma_sum = LumaSum(0);
        map_rgb_blocks(&mut img.pixels, &mut luma_sum);
        luma_sum.0
    };
    let mean = (sum as f64 / (img.width * img.height) as f64).round();
    map_pixels(img, |p| (mean + factor * (p as f64 - mean)).round().clamp(0.0, 255.0) as u8)
}

/// Saturation (PIL's Color enhance): blend with the gray version (0 = gray).
pub fn saturation(mut img: Image, factor: f64) -> Image {
    if img.channels == 3 {
        let f = fixed_point(factor);
        map_rgb_blocks(&mut img.pixels, &mut Saturate(f));
    }
    img
}

/// Blends every pixel with its luma by a factor in 8.8 fixed point.
struct Saturate(i32);

impl BlockKernel for Saturate {
    #[inline(always)]
    fn apply(&mut self, planes: &mut Planes) {
        let l = luma(planes);
        for plane in planes.iter_mut() {
            for (v, &l) in plane.iter_mut().zip(&l) {
                *v = blend_value(l, *v, self.0);
            }
        }
    }
}

/// Sharpness: blend with PIL's SMOOTH-filtered image (3×3, centre 5, others 1, /13; the
/// border keeps its pixels). 0 = smoothed, 1 = unchanged, 2 = sharpened.
pub fn sharpness(img: Image, factor: f64) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let p = &img.pixels;
    let f = fixed_point(factor);
    let mut out = img.pixels.clone();
    let stride = w * c;
    for y in 1..h.saturating_sub(1) {
        let centre_row = y * stride;
        for i in centre_row + c..centre_row + stride - c {
            let (up, down) = (i - stride, i + stride);
            let sum =
                [up - c, up, up + c, i - c, i + c, down - c, down, down + c].iter().map(|&j| p[j] as u32).sum::<u32>()
                    + 5 * p[i] as u32;
            out[i] = blend_value(((sum + 6) / 13) as i32, p[i] as i32, f) as u8;
        }
    }
    Image::new(w, h, c, out)
}

/// Shifts the hue by `shift` turns (−0.5..0.5), in HSV as torchvision's `adjust_hue`.
/// Gray pixels have no hue and stay as they are.
pub fn hue(mut img: Image, shift: f64) -> Image {
    if img.channels == 1 || shift == 0.0 {
        return img;
    }
    let shift6 = 6.0 * (shift as f32).rem_euclid(1.0);
    map_rgb_blocks(&mut img.pixels, &mut ShiftHue(shift6));
    img
}

/// Rotates every pixel's hue by this many sixths of a turn.
struct ShiftHue(f32);

impl BlockKernel for ShiftHue {
    #[inline(always)]
    fn apply(&mut self, [r, g, b]: &mut Planes) {
        for k in 0..BLOCK {
            [r[k], g[k], b[k]] = hue_shifted([r[k], g[k], b[k]], self.0);
        }
    }
}

/// One pixel's hue rotated by `shift6` sixths of a turn, with selects only (no branches),
/// so that the loop over a block vectorises. Gray pixels (max = min) come back unchanged.
#[inline(always)]
fn hue_shifted([r, g, b]: [i32; 3], shift6: f32) -> [i32; 3] {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    // For gray pixels the divisor is 1 and every numerator 0: hue 0, any shift, same gray.
    let inv = 1.0 / (max - min).max(1) as f32;
    // Hue in sixths of a turn, shifted, wrapped to [0, 6).
    let sector = if max == r {
        (g - b) as f32 * inv
    } else if max == g {
        (b - r) as f32 * inv + 2.0
    } else {
        (r - g) as f32 * inv + 4.0
    };
    let mut h6 = sector + shift6; // in [−1, 11)
    h6 = if h6 >= 6.0 { h6 - 6.0 } else { h6 };
    h6 = if h6 < 0.0 { h6 + 6.0 } else { h6 };
    // SAFETY (both conversions): finite values in range (h6 in [0, 6], channels in
    // (−0.5, 255.5]); `as` would saturate, which does not vectorise.
    let i = unsafe { h6.to_int_unchecked::<i32>() };
    let f = h6 - i as f32;
    let (v, p, delta) = (max as f32, min as f32, (max - min) as f32);
    let (q, t) = (v - delta * f, p + delta * f);
    let red = if i == 1 {
        q
    } else if i == 2 || i == 3 {
        p
    } else if i == 4 {
        t
    } else {
        v
    };
    let green = if i == 0 {
        t
    } else if i == 1 || i == 2 {
        v
    } else if i == 3 {
        q
    } else {
        p
    };
    let blue = if i <= 1 {
        p
    } else if i == 2 {
        t
    } else if i <= 4 {
        v
    } else {
        q
    };
    [red, green, blue].map(|c| unsafe { (c + 0.5).to_int_unchecked::<i32>() })
}

/// 255 − p.
pub fn invert(img: Image) -> Image {
    map_pixels(img, |p| 255 - p)
}

/// Inverts pixels at or above `threshold` (256 leaves the image unchanged).
pub fn solarize(img: Image, threshold: f64) -> Image {
    map_pixels(img, |p| if p as f64 >= threshold { 255 - p } else { p })
}

/// Adds `add` to pixels below 128, clipped at 255.
pub fn solarize_add(img: Image, add: f64) -> Image {
    map_pixels(img, |p| if p < 128 { (p as f64 + add).round().min(255.0) as u8 } else { p })
}

/// Keeps the `bits` most significant bits of every value (0 bits = black).
pub fn posterize(img: Image, bits: u32) -> Image {
    if bits >= 8 {
        return img;
    }
    let mask = !((1u16 << (8 - bits)) - 1) as u8;
    map_pixels(img, |p| p & mask)
}

/// Remaps every channel through the table `make_lut` builds from its histogram (none:
/// the channel stays as it is).
fn per_channel_lut(mut img: Image, make_lut: impl Fn(&[u32; 256]) -> Option<[u8; 256]>) -> Image {
    let c = img.channels;
    for ch in 0..c {
        let mut histogram = [0u32; 256];
        for px in img.pixels.chunks_exact(c) {
            histogram[px[ch] as usize] += 1;
        }
        if let Some(lut) = make_lut(&histogram) {
            for px in img.pixels.chunks_exact_mut(c) {
                px[ch] = lut[px[ch] as usize];
            }
        }
    }
    img
}

/// Stretches every channel to the full 0..255 range (PIL's `autocontrast`, no cut-off).
pub fn autocontrast(img: Image) -> Image {
    per_channel_lut(img, |histogram| {
        let lo = histogram.iter().position(|&n| n > 0)?;
        let hi = histogram.iter().rposition(|&n| n > 0)?;
        if hi <= lo {
            return None;
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        Some(std::array::from_fn(|i| (i as f64 * scale + offset).clamp(0.0, 255.0) as u8))
    })
}

/// Histogram equalisation of every channel (PIL's `equalize`).
pub fn equalize(img: Image) -> Image {
    per_channel_lut(img, |histogram| {
        let last = histogram.iter().rposition(|&n| n > 0)?;
        let total: u32 = histogram.iter().sum();
        let step = (total - histogram[last]) / 255;
        if step == 0 {
            return None;
        }
        let mut n = step / 2;
        Some(std::array::from_fn(|i| {
            let value = (n / step).min(255) as u8;
            n += histogram[i];
            value
        }))
    })
}

/// Separable Gaussian blur with standard deviation `sigma` (kernel radius ⌈3σ⌉, edges
/// replicated).
pub fn gaussian_blur(img: &Image, sigma: f64) -> Image {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f64> = (-radius..=radius).map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let (w, h, c) = (img.width as isize, img.height as isize, img.channels);
    let pass = |src: &[f64], horizontal: bool| -> Vec<f64> {
        let mut out = vec![0.0; src.len()];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let mut sum = 0.0;
                    for (k, weight) in weights.iter().enumerate() {
                        let offset = k as isize - radius;
                        let (sx, sy) = if horizontal {
                            ((x + offset).clamp(0, w - 1), y)
                        } else {
                            (x, (y + offset).clamp(0, h - 1))
                        };
                        sum += weight * src[((sy * w + sx) as usize) * c + ch];
                    }
                    out[((y * w + x) as usize) * c + ch] = sum;
                }
            }
        }
        out
    };
    let src: Vec<f64> = img.pixels.iter().map(|&p| p as f64).collect();
    let blurred = pass(&pass(&src, true), false);
    Image::new(img.width, img.height, c, blurred.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect())
}

/// Fills the `size × size` square centred at (`cx`, `cy`), clipped to the image, with `fill`.
pub fn cutout(mut img: Image, cx: usize, cy: usize, size: usize, fill: &[u8]) -> Image {
    let c = img.channels;
    let (x0, x1) = (cx.saturating_sub(size / 2), (cx + size.div_ceil(2)).min(img.width));
    let (y0, y1) = (cy.saturating_sub(size / 2), (cy + size.div_ceil(2)).min(img.height));
    for y in y0..y1 {
        let row = y * img.width;
        img.pixels[(row + x0) * c..(row + x1) * c].chunks_exact_mut(c).for_each(|px| px.copy_from_slice(&fill[..c]));
    }
    img
}
