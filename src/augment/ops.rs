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
pub fn hflip(img: &Image) -> Image {
    let c = img.channels;
    let mut out = Vec::with_capacity(img.pixels.len());
    for row in img.pixels.chunks_exact(img.width * c) {
        for px in row.chunks_exact(c).rev() {
            out.extend_from_slice(px);
        }
    }
    Image::new(img.width, img.height, c, out)
}

/// The `width × height` region at (`left`, `top`), which must lie inside the image.
pub fn crop(img: &Image, left: usize, top: usize, width: usize, height: usize) -> Image {
    assert!(
        left + width <= img.width && top + height <= img.height,
        "crop box outside the image"
    );
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
pub fn resized_crop(
    img: &Image,
    region: (f64, f64, f64, f64),
    out_width: usize,
    out_height: usize,
) -> Image {
    let pixel_type = if img.channels == 3 {
        fr::PixelType::U8x3
    } else {
        fr::PixelType::U8
    };
    let src =
        fr::images::ImageRef::new(img.width as u32, img.height as u32, &img.pixels, pixel_type)
            .expect("image buffer matches its size");
    let mut dst = fr::images::Image::new(out_width as u32, out_height as u32, pixel_type);
    let (left, top, width, height) = region;
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(left, top, width, height);
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel types");
    Image::new(out_width, out_height, img.channels, dst.into_vec())
}

/// Resizes the whole image.
pub fn resize(img: &Image, width: usize, height: usize) -> Image {
    resized_crop(
        img,
        (0.0, 0.0, img.width as f64, img.height as f64),
        width,
        height,
    )
}

/// Resampling of the geometric RandAugment / AutoAugment operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
}

/// Keys' cubic convolution kernel with a = −0.5 (PIL's bicubic).
fn cubic(x: f64) -> f64 {
    let (a, x) = (-0.5, x.abs());
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Affine warp, as PIL's `Image.transform(AFFINE, (a, b, c, d, e, f))`: output pixel (x, y)
/// samples the input at (a·x + b·y + c, d·x + e·y + f) (pixel centres at +0.5). Points
/// outside the input take `fill`.
pub fn affine(img: &Image, m: [f64; 6], interpolation: Interpolation, fill: &[u8]) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut out = Vec::with_capacity(img.pixels.len());
    let at = |x: isize, y: isize, ch: usize| -> f64 {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        img.pixels[(y * w + x) * c + ch] as f64
    };
    for y in 0..h {
        for x in 0..w {
            let (xo, yo) = (x as f64 + 0.5, y as f64 + 0.5);
            let sx = m[0] * xo + m[1] * yo + m[2];
            let sy = m[3] * xo + m[4] * yo + m[5];
            if sx < 0.0 || sy < 0.0 || sx >= w as f64 || sy >= h as f64 {
                out.extend_from_slice(&fill[..c]);
                continue;
            }
            let (fx, fy) = (sx - 0.5, sy - 0.5);
            for ch in 0..c {
                let value = match interpolation {
                    Interpolation::Nearest => at(sx.floor() as isize, sy.floor() as isize, ch),
                    Interpolation::Bilinear => {
                        let (x0, y0) = (fx.floor(), fy.floor());
                        let (dx, dy) = (fx - x0, fy - y0);
                        let (x0, y0) = (x0 as isize, y0 as isize);
                        let top = at(x0, y0, ch) * (1.0 - dx) + at(x0 + 1, y0, ch) * dx;
                        let bottom = at(x0, y0 + 1, ch) * (1.0 - dx) + at(x0 + 1, y0 + 1, ch) * dx;
                        top * (1.0 - dy) + bottom * dy
                    }
                    Interpolation::Bicubic => {
                        let (x0, y0) = (fx.floor(), fy.floor());
                        let (dx, dy) = (fx - x0, fy - y0);
                        let (x0, y0) = (x0 as isize, y0 as isize);
                        let mut sum = 0.0;
                        for j in -1..=2 {
                            let wy = cubic(j as f64 - dy);
                            for i in -1..=2 {
                                sum += wy * cubic(i as f64 - dx) * at(x0 + i, y0 + j, ch);
                            }
                        }
                        sum
                    }
                };
                out.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Image::new(w, h, c, out)
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
pub fn translate(
    img: &Image,
    dx: f64,
    dy: f64,
    interpolation: Interpolation,
    fill: &[u8],
) -> Image {
    affine(img, [1.0, 0.0, dx, 0.0, 1.0, dy], interpolation, fill)
}

fn map_pixels(img: &Image, f: impl Fn(u8) -> u8) -> Image {
    let lut: Vec<u8> = (0..=255u8).map(f).collect();
    Image::new(
        img.width,
        img.height,
        img.channels,
        img.pixels.iter().map(|&p| lut[p as usize]).collect(),
    )
}

/// ITU-R 601-2 luma, as PIL's `convert("L")`.
fn luma(px: &[u8]) -> u8 {
    ((px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114 + 500) / 1000) as u8
}

/// The gray version, with the same number of channels.
pub fn grayscale(img: &Image) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    let mut out = Vec::with_capacity(img.pixels.len());
    for px in img.pixels.chunks_exact(3) {
        let l = luma(px);
        out.extend_from_slice(&[l, l, l]);
    }
    Image::new(img.width, img.height, 3, out)
}

/// `degenerate + factor · (img − degenerate)`, clipped: PIL's ImageEnhance blend.
fn blend(degenerate: &Image, img: &Image, factor: f64) -> Image {
    let pixels = degenerate
        .pixels
        .iter()
        .zip(&img.pixels)
        .map(|(&d, &p)| {
            (d as f64 + factor * (p as f64 - d as f64))
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    Image::new(img.width, img.height, img.channels, pixels)
}

/// Brightness: blend with black (factor 0 = black, 1 = unchanged).
pub fn brightness(img: &Image, factor: f64) -> Image {
    map_pixels(img, |p| (p as f64 * factor).round().clamp(0.0, 255.0) as u8)
}

/// Contrast: blend with the mean gray level (factor 0 = uniform gray, 1 = unchanged).
pub fn contrast(img: &Image, factor: f64) -> Image {
    let sum: u64 = if img.channels == 1 {
        img.pixels.iter().map(|&p| p as u64).sum()
    } else {
        img.pixels.chunks_exact(3).map(|px| luma(px) as u64).sum()
    };
    let mean = (sum as f64 / (img.width * img.height) as f64).round();
    map_pixels(img, |p| {
        (mean + factor * (p as f64 - mean))
            .round()
            .clamp(0.0, 255.0) as u8
    })
}

/// Saturation (PIL's Color enhance): blend with the gray version (0 = gray).
pub fn saturation(img: &Image, factor: f64) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    blend(&grayscale(img), img, factor)
}

/// Sharpness: blend with PIL's SMOOTH-filtered image (3×3, centre 5, others 1, /13; the
/// border keeps its pixels). 0 = smoothed, 1 = unchanged, 2 = sharpened.
pub fn sharpness(img: &Image, factor: f64) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut smooth = img.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            for ch in 0..c {
                let mut sum = 0u32;
                for (dy, dx) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dy, dx))) {
                    let weight = if dy == 1 && dx == 1 { 5 } else { 1 };
                    sum += weight * img.pixels[((y + dy - 1) * w + (x + dx - 1)) * c + ch] as u32;
                }
                smooth.pixels[(y * w + x) * c + ch] = ((sum + 6) / 13) as u8;
            }
        }
    }
    blend(&smooth, img, factor)
}

/// Shifts the hue by `shift` turns (−0.5..0.5), in HSV as torchvision's `adjust_hue`.
pub fn hue(img: &Image, shift: f64) -> Image {
    if img.channels == 1 || shift == 0.0 {
        return img.clone();
    }
    let mut out = Vec::with_capacity(img.pixels.len());
    for px in img.pixels.chunks_exact(3) {
        let [r, g, b] = [px[0], px[1], px[2]].map(|v| v as f64 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let mut h = if delta == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / delta).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / delta + 2.0) / 6.0
        } else {
            ((r - g) / delta + 4.0) / 6.0
        };
        h = (h + shift).rem_euclid(1.0);
        let s = if max == 0.0 { 0.0 } else { delta / max };
        let v = max;
        let sector = h * 6.0;
        let i = sector.floor();
        let f = sector - i;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match i as i64 % 6 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        out.extend([r, g, b].map(|x| (x * 255.0).round().clamp(0.0, 255.0) as u8));
    }
    Image::new(img.width, img.height, 3, out)
}

/// 255 − p.
pub fn invert(img: &Image) -> Image {
    map_pixels(img, |p| 255 - p)
}

/// Inverts pixels at or above `threshold` (256 leaves the image unchanged).
pub fn solarize(img: &Image, threshold: f64) -> Image {
    map_pixels(img, |p| if p as f64 >= threshold { 255 - p } else { p })
}

/// Adds `add` to pixels below 128, clipped at 255.
pub fn solarize_add(img: &Image, add: f64) -> Image {
    map_pixels(img, |p| {
        if p < 128 {
            (p as f64 + add).round().min(255.0) as u8
        } else {
            p
        }
    })
}

/// Keeps the `bits` most significant bits of every value (0 bits = black).
pub fn posterize(img: &Image, bits: u32) -> Image {
    if bits >= 8 {
        return img.clone();
    }
    let mask = !((1u16 << (8 - bits)) - 1) as u8;
    map_pixels(img, |p| p & mask)
}

fn per_channel_lut(img: &Image, make_lut: impl Fn(&[u32; 256]) -> Option<[u8; 256]>) -> Image {
    let c = img.channels;
    let mut out = img.pixels.clone();
    for ch in 0..c {
        let mut histogram = [0u32; 256];
        for px in img.pixels.chunks_exact(c) {
            histogram[px[ch] as usize] += 1;
        }
        if let Some(lut) = make_lut(&histogram) {
            for px in out.chunks_exact_mut(c) {
                px[ch] = lut[px[ch] as usize];
            }
        }
    }
    Image::new(img.width, img.height, c, out)
}

/// Stretches every channel to the full 0..255 range (PIL's `autocontrast`, no cut-off).
pub fn autocontrast(img: &Image) -> Image {
    per_channel_lut(img, |histogram| {
        let lo = histogram.iter().position(|&n| n > 0)?;
        let hi = histogram.iter().rposition(|&n| n > 0)?;
        if hi <= lo {
            return None;
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        Some(std::array::from_fn(|i| {
            (i as f64 * scale + offset).clamp(0.0, 255.0) as u8
        }))
    })
}

/// Histogram equalisation of every channel (PIL's `equalize`).
pub fn equalize(img: &Image) -> Image {
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
    let weights: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
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
    Image::new(
        img.width,
        img.height,
        c,
        blurred
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect(),
    )
}

/// Fills the `size × size` square centred at (`cx`, `cy`), clipped to the image, with `fill`.
pub fn cutout(img: &Image, cx: usize, cy: usize, size: usize, fill: &[u8]) -> Image {
    let mut out = img.clone();
    let c = img.channels;
    let (x0, x1) = (
        cx.saturating_sub(size / 2),
        (cx + size.div_ceil(2)).min(img.width),
    );
    let (y0, y1) = (
        cy.saturating_sub(size / 2),
        (cy + size.div_ceil(2)).min(img.height),
    );
    for y in y0..y1 {
        for x in x0..x1 {
            out.pixels[(y * img.width + x) * c..(y * img.width + x + 1) * c]
                .copy_from_slice(&fill[..c]);
        }
    }
    out
}
