//! PNG pictures for people to look at: bar charts and image grids. Drawn pixel by pixel
//! (no font or system library needed); the numbers behind a chart are printed beside it.
use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

use crate::augment::ops;
use crate::data::Image;

/// A bar per value, in the given order, each in its colour, on a white background with a
/// baseline; the tallest bar fills the height. `log_scale` plots log10(1 + value).
pub fn bar_chart(values: &[f64], colors: &[[u8; 3]], log_scale: bool, path: &Path) -> Result<()> {
    let (width, height, margin) = (800u32, 400u32, 20u32);
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let scaled: Vec<f64> = values.iter().map(|&v| if log_scale { (1.0 + v.max(0.0)).log10() } else { v }).collect();
    let max = scaled.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let plot_w = width - 2 * margin;
    let plot_h = height - 2 * margin;
    let slot = plot_w as f64 / values.len().max(1) as f64;
    for (i, (&v, color)) in scaled.iter().zip(colors).enumerate() {
        let bar_h = ((v / max) * plot_h as f64).round() as u32;
        let x0 = margin + (i as f64 * slot) as u32;
        let x1 = (margin + ((i + 1) as f64 * slot) as u32).max(x0 + 1);
        let gap = u32::from(x1 - x0 > 3);
        for x in x0..x1 - gap {
            for y in (height - margin - bar_h)..(height - margin) {
                canvas.put_pixel(x, y, Rgb(*color));
            }
        }
    }
    for x in margin..width - margin {
        canvas.put_pixel(x, height - margin, Rgb([0, 0, 0]));
    }
    canvas.save(path).with_context(|| format!("cannot write {}", path.display()))
}

/// Rows of images, each shown at `cell × cell` pixels with a 2-pixel white border.
pub fn image_grid(rows: &[Vec<Image>], cell: usize, path: &Path) -> Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let pitch = cell + 2;
    let mut canvas = RgbImage::from_pixel((columns * pitch + 2) as u32, (rows.len() * pitch + 2) as u32, Rgb([255; 3]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let shown = ops::resize(img, cell, cell);
            for y in 0..cell {
                for x in 0..cell {
                    let px = shown.pixel(x, y);
                    let rgb = if px.len() == 1 { [px[0]; 3] } else { [px[0], px[1], px[2]] };
                    canvas.put_pixel((2 + c * pitch + x) as u32, (2 + r * pitch + y) as u32, Rgb(rgb));
                }
            }
        }
    }
    canvas.save(path).with_context(|| format!("cannot write {}", path.display()))
}
