//! PNG pictures for people to look at: bar charts and image grids. Drawn pixel by pixel
//! (no font or system library needed); the numbers behind a chart are printed beside it.
use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

use crate::augment::ops;
use crate::data::Image;

/// The colours of every chart (matplotlib's first five).
pub const BLUE: [u8; 3] = [31, 119, 180];
pub const ORANGE: [u8; 3] = [255, 127, 14];
pub const GREEN: [u8; 3] = [44, 160, 44];
pub const RED: [u8; 3] = [214, 39, 40];
pub const PURPLE: [u8; 3] = [148, 103, 189];

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

/// One line or set of points of an [`xy_chart`].
pub struct Series {
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
    /// Joined by lines (else drawn as dots).
    pub lines: bool,
}

/// Axis ranges and scale of one panel.
pub struct Axes {
    pub x: (f64, f64),
    pub y: (f64, f64),
    /// Plot log10(x); ticks at powers of ten.
    pub log_x: bool,
}

/// Panels stacked vertically, each with its series, axes, grid lines and numbered ticks.
pub fn xy_chart(panels: &[(Axes, Vec<Series>)], path: &Path) -> Result<()> {
    let (width, panel_height) = (800u32, 360u32);
    let mut canvas = RgbImage::from_pixel(width, panel_height * panels.len().max(1) as u32, Rgb([255; 3]));
    for (i, (axes, series)) in panels.iter().enumerate() {
        draw_panel(&mut canvas, i as u32 * panel_height, panel_height, axes, series);
    }
    canvas.save(path).with_context(|| format!("cannot write {}", path.display()))
}

fn draw_panel(canvas: &mut RgbImage, top: u32, height: u32, axes: &Axes, series: &[Series]) {
    let (left, right, margin_top, margin_bottom) = (70.0, canvas.width() as f64 - 20.0, 20.0, 40.0);
    let (y_top, y_bottom) = (top as f64 + margin_top, (top + height) as f64 - margin_bottom);
    let fx = |x: f64| if axes.log_x { x.max(1e-12).log10() } else { x };
    let (x0, x1) = (fx(axes.x.0), fx(axes.x.1).max(fx(axes.x.0) + 1e-9));
    let (v0, v1) = (axes.y.0, axes.y.1.max(axes.y.0 + 1e-9));
    let px = |x: f64| left + (fx(x) - x0) / (x1 - x0) * (right - left);
    let py = |y: f64| y_bottom - (y - v0) / (v1 - v0) * (y_bottom - y_top);
    let grey = Rgb([225, 225, 225]);
    // Horizontal grid lines and labels: five steps of the y range.
    for k in 0..=4 {
        let y = v0 + (v1 - v0) * k as f64 / 4.0;
        line(canvas, (left, py(y)), (right, py(y)), grey);
        text(canvas, &short_number(y), left as i64 - 8, py(y) as i64 - 5, true);
    }
    // Vertical grid lines: powers of ten on a log axis, five steps otherwise.
    let x_ticks: Vec<f64> = if axes.log_x {
        (x0.floor() as i32..=x1.ceil() as i32).map(|e| 10f64.powi(e)).filter(|&x| fx(x) >= x0 && fx(x) <= x1).collect()
    } else {
        (0..=4).map(|k| axes.x.0 + (axes.x.1 - axes.x.0) * k as f64 / 4.0).collect()
    };
    for x in x_ticks {
        line(canvas, (px(x), y_top), (px(x), y_bottom), grey);
        let label = short_number(x);
        text(canvas, &label, px(x) as i64 - 4 * label.len() as i64 + 4, y_bottom as i64 + 8, false);
    }
    line(canvas, (left, y_bottom), (right, y_bottom), Rgb([0; 3]));
    line(canvas, (left, y_top), (left, y_bottom), Rgb([0; 3]));
    for s in series {
        let color = Rgb(s.color);
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (px(x), py(y))).collect();
        if s.lines {
            for pair in points.windows(2) {
                line(canvas, pair[0], pair[1], color);
            }
        }
        for &(x, y) in &points {
            for (dx, dy) in (-2..=2).flat_map(|dx| (-2..=2).map(move |dy| (dx, dy))) {
                put(canvas, x as i64 + dx, y as i64 + dy, color);
            }
        }
    }
}

fn put(canvas: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < canvas.width() && (y as u32) < canvas.height() {
        canvas.put_pixel(x as u32, y as u32, color);
    }
}

fn line(canvas: &mut RgbImage, from: (f64, f64), to: (f64, f64), color: Rgb<u8>) {
    let steps = (to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
        put(canvas, x.round() as i64, y.round() as i64, color);
    }
}

/// A tick label: integers as such, small numbers with two decimals.
fn short_number(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// Draws digits, '.', '-' and 'e' in a 3 × 5 pixel font at twice the size, from (x, y) or
/// ending at x when `right_aligned`.
fn text(canvas: &mut RgbImage, s: &str, x: i64, y: i64, right_aligned: bool) {
    const GLYPHS: [(char, [u8; 5]); 13] = [
        ('0', [7, 5, 5, 5, 7]),
        ('1', [2, 6, 2, 2, 7]),
        ('2', [7, 1, 7, 4, 7]),
        ('3', [7, 1, 7, 1, 7]),
        ('4', [5, 5, 7, 1, 1]),
        ('5', [7, 4, 7, 1, 7]),
        ('6', [7, 4, 7, 5, 7]),
        ('7', [7, 1, 1, 1, 1]),
        ('8', [7, 5, 7, 5, 7]),
        ('9', [7, 5, 7, 1, 7]),
        ('.', [0, 0, 0, 0, 2]),
        ('-', [0, 0, 7, 0, 0]),
        ('e', [7, 5, 7, 4, 7]),
    ];
    let advance = 8;
    let start = if right_aligned { x - advance * s.chars().count() as i64 } else { x };
    for (i, ch) in s.chars().enumerate() {
        let Some((_, rows)) = GLYPHS.iter().find(|(c, _)| *c == ch) else { continue };
        for (r, bits) in rows.iter().enumerate() {
            for c in 0..3 {
                if bits & (4 >> c) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        put(canvas, start + i as i64 * advance + 2 * c + dx, y + 2 * r as i64 + dy, Rgb([60; 3]));
                    }
                }
            }
        }
    }
}

/// A heat map of a square matrix of values in [−1, 1] (cosines): blue −1, white 0, red +1,
/// each entry a square of at least 2 pixels, about 512 pixels a side in all.
pub fn heat_map(matrix: &[Vec<f64>], path: &Path) -> Result<()> {
    let n = matrix.len().max(1);
    let cell = (512 / n).max(2);
    let mut canvas = RgbImage::from_pixel((n * cell) as u32, (n * cell) as u32, Rgb([255; 3]));
    for (row, values) in matrix.iter().enumerate() {
        for (column, &value) in values.iter().enumerate() {
            let v = value.clamp(-1.0, 1.0);
            let toward = if v < 0.0 { BLUE } else { RED };
            let color = toward.map(|c| (255.0 + (c as f64 - 255.0) * v.abs()).round() as u8);
            for y in row * cell..(row + 1) * cell {
                for x in column * cell..(column + 1) * cell {
                    canvas.put_pixel(x as u32, y as u32, Rgb(color));
                }
            }
        }
    }
    canvas.save(path).with_context(|| format!("cannot write {}", path.display()))
}
