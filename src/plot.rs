//! The pictures of a run, for people to look at: training curves, per-class accuracy
//! against training images, heat maps (confusion, class-mean cosines), a reliability
//! diagram and class counts, drawn with plotters in a bundled font (DejaVu Sans, see
//! `assets/fonts/LICENSE`) so that no system font is needed; and grids of images.
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::augment::ops;
use crate::data::Image;
use crate::metrics::{CalibrationBin, EpochRecord, ShotGroup};

/// The colours of every chart (matplotlib's first five).
pub const BLUE: [u8; 3] = [31, 119, 180];
pub const ORANGE: [u8; 3] = [255, 127, 14];
pub const GREEN: [u8; 3] = [44, 160, 44];
pub const RED: [u8; 3] = [214, 39, 40];
pub const PURPLE: [u8; 3] = [148, 103, 189];
const GREY: [u8; 3] = [127, 127, 127];
/// Grid lines: light enough to read the data over.
const GRID: RGBColor = RGBColor(225, 225, 225);

/// A shot group's colour in every plot: blue, orange, red.
fn shot_color(group: ShotGroup) -> [u8; 3] {
    match group {
        ShotGroup::Many => BLUE,
        ShotGroup::Medium => ORANGE,
        ShotGroup::Few => RED,
    }
}

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
/// Class names are written along the axes for at most this many classes.
const MAX_NAMED_CLASSES: usize = 20;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// A value read off an epoch's record, when the record has it.
type Field<'a> = &'a dyn Fn(&EpochRecord) -> Option<f64>;

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Draws a `width × height` picture with `draw` and writes it to `path` as PNG.
fn draw_png(path: &Path, (width, height): (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<()> {
    static FONT_REGISTERED: Once = Once::new();
    // The font is compiled in and parses (a test draws every chart); were it not to, the
    // first text drawn would fail with plotters' "font unavailable" error.
    FONT_REGISTERED.call_once(|| _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT));
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&area)?;
        area.present()?;
    }
    let image = RgbImage::from_raw(width, height, pixels).context("a bitmap of the wrong size")?;
    image.save(path).with_context(|| format!("cannot write {}", path.display()))
}

/// Accuracy (above) and the losses with the learning rate (below) by epoch, from a run's
/// records; `split` names the split evaluated after each epoch (`test` or `val`).
pub fn training_curves(history: &[EpochRecord], split: &str, path: &Path) -> Result<()> {
    let epochs = 1..history.iter().map(|r| r.epoch as i32 + 1).max().unwrap_or(1).max(2);
    let series = |value: Field| -> Vec<(i32, f64)> {
        history.iter().filter_map(|r| Some((r.epoch as i32 + 1, value(r)?))).collect()
    };
    draw_png(path, (900, 820), |area| {
        let (top, bottom) = area.split_vertically(420);
        let split_top1 = format!("{split} top-1");
        let accuracies: [(&str, [u8; 3], u32, Field); 5] = [
            ("train top-1 (augmented)", GREY, 1, &|r| Some(r.train_accuracy)),
            (&split_top1, [0, 0, 0], 3, &|r| Some(r.eval.top1)),
            (ShotGroup::Many.describe(), shot_color(ShotGroup::Many), 1, &|r| r.eval.many),
            (ShotGroup::Medium.describe(), shot_color(ShotGroup::Medium), 1, &|r| r.eval.medium),
            (ShotGroup::Few.describe(), shot_color(ShotGroup::Few), 1, &|r| r.eval.few),
        ];
        let mut chart = ChartBuilder::on(&top)
            .caption(format!("Accuracy by epoch ({split} split)"), font(22))
            .margin(12)
            // The width of the losses panel's learning-rate axis, so that epochs line up.
            .margin_right(92)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(epochs.clone(), 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        let percent = |value: Field| series(value).into_iter().map(|(e, v)| (e, 100.0 * v)).collect();
        draw_curves(&mut chart, accuracies.map(|(label, color, width, value)| (label, color, width, percent(value))))?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;

        let losses: [(&str, [u8; 3], Field); 2] = [
            ("cross-entropy (logit-adjusted for LA and BCL)", GREEN, &|r| Some(r.train_ce)),
            ("contrastive", PURPLE, &|r| Some(r.train_contrastive).filter(|&v| v != 0.0)),
        ];
        let max_loss = history.iter().map(|r| r.train_ce.max(r.train_contrastive)).fold(1e-6, f64::max);
        let max_lr = history.iter().map(|r| r.lr).fold(1e-12, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .caption("Training losses and learning rate", font(22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(80)
            .build_cartesian_2d(epochs.clone(), 0f64..max_loss * 1.05)?
            .set_secondary_coord(epochs, 0f64..max_lr * 1.05);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .label_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        chart.configure_secondary_axes().y_desc("learning rate").label_style(font(14)).draw()?;
        draw_curves(&mut chart, losses.map(|(label, color, value)| (label, color, 2, series(value))))?;
        let lr_style = rgb(GREY).stroke_width(1);
        chart
            .draw_secondary_series(DashedLineSeries::new(series(&|r| Some(r.lr)), 6, 4, lr_style))?
            .label("learning rate (right axis)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], lr_style));
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Each curve (label, colour, line width, points by epoch) as a line with dots, labelled for
/// the legend; curves without points are left out.
fn draw_curves<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordi32, RangedCoordf64>>,
    curves: impl IntoIterator<Item = (&'a str, [u8; 3], u32, Vec<(i32, f64)>)>,
) -> Result<()> {
    for (label, color, width, points) in curves.into_iter().filter(|curve| !curve.3.is_empty()) {
        let style = rgb(color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(points, style).point_size(2 + width))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    Ok(())
}

/// The legend of `chart`'s labelled series, at `position`.
fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(13))
        .draw()?;
    Ok(())
}

/// Each class's accuracy against its training images (log scale), the many/medium/few
/// ranges shaded, class names beside the points for up to 20 classes.
pub fn per_class_accuracy(
    class_names: &[String],
    train_counts: &[i64],
    accuracy: &[f64],
    split: &str,
    path: &Path,
) -> Result<()> {
    let low = train_counts.iter().copied().min().unwrap_or(1).max(1) as f64 / 1.5;
    let high = train_counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.5;
    const TOP: f64 = 122.0;
    draw_png(path, (900, 580), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Per-class {split} accuracy against training images"), font(22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            // Room above 100% for the legend.
            .build_cartesian_2d((low..high).log_scale(), 0f64..TOP)?;
        chart
            .configure_mesh()
            .x_desc("training images of the class (log scale)")
            .y_desc("accuracy (%)")
            .x_label_formatter(&one_two_five)
            .y_label_formatter(&|&v| if v <= 100.0 { format!("{v:.0}") } else { String::new() })
            .label_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        for group in ShotGroup::ALL {
            let counts = group.train_images();
            let (from, to) = ((*counts.start() as f64 - 0.5).max(low), (*counts.end() as f64 + 0.5).min(high));
            if from >= to {
                continue;
            }
            let shade = rgb(shot_color(group)).mix(0.12).filled();
            chart.draw_series([Rectangle::new([(from, 0.0), (to, TOP)], shade)])?.label(group.describe()).legend(
                move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], rgb(shot_color(group)).mix(0.5).filled()),
            );
        }
        let named = class_names.len() <= MAX_NAMED_CLASSES;
        chart.draw_series(train_counts.iter().zip(accuracy).zip(class_names).map(|((&n, &acc), name)| {
            let point = EmptyElement::at((n.max(1) as f64, 100.0 * acc))
                + Circle::new((0, 0), 4, rgb(shot_color(ShotGroup::of(n))).filled());
            point + Text::new(if named { name.clone() } else { String::new() }, (6, -16), font(12))
        }))?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// A log axis's tick label at 1, 2 and 5 times a power of ten; none at the others, which
/// would crowd each other.
fn one_two_five(x: &f64) -> String {
    let mantissa = x / 10f64.powf(x.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) { format!("{x:.0}") } else { String::new() }
}

/// What a [`heat_map`] shows.
pub struct HeatMap<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// The classes along both axes, named when there are at most 20.
    pub class_names: &'a [String],
    /// The values at the two ends of the colour scale: blue, white, red when the first is
    /// negative, white to dark blue otherwise.
    pub range: (f64, f64),
}

/// A square matrix as coloured cells, row 0 at the top, with a colour bar; each cell's
/// value is written in it for up to 12 classes.
pub fn heat_map(matrix: &[Vec<f64>], spec: &HeatMap, path: &Path) -> Result<()> {
    let n = matrix.len() as i32;
    let names = spec.class_names;
    let named = names.len() <= MAX_NAMED_CLASSES;
    let longest = if named { names.iter().map(|s| s.chars().count()).max().unwrap_or(1) } else { 3 };
    let label_area = (16 + 8 * longest as u32).min(180);
    // Named classes go down the x axis by `names_below`.
    let label = |v: &SegmentValue<i32>, flipped: bool| match v {
        SegmentValue::CenterOf(_) if named && !flipped => String::new(),
        SegmentValue::CenterOf(k) => {
            let class = if flipped { n - 1 - k } else { *k } as usize;
            if named { names.get(class).cloned().unwrap_or_default() } else { class.to_string() }
        }
        _ => String::new(),
    };
    draw_png(path, (760 + label_area, 700 + label_area), |area| {
        let (main, bar) = area.split_horizontally(660 + label_area);
        let mut chart = ChartBuilder::on(&main)
            .caption(&spec.title, font(20))
            .margin(12)
            .x_label_area_size(label_area + 20)
            .y_label_area_size(label_area + 20)
            // An integer range is inclusive: 0..n − 1 is n cells.
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n.min(20) as usize)
            .y_labels(n.min(20) as usize)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .y_label_style(font(13))
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .axis_desc_style(font(15))
            .draw()?;
        let cells = matrix.iter().enumerate().flat_map(|(row, values)| {
            let y = n - 1 - row as i32;
            values.iter().enumerate().map(move |(column, &v)| {
                let (x, y) = (column as i32, y);
                Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    scale_color(v, spec.range).filled(),
                )
            })
        });
        chart.draw_series(cells)?;
        if named {
            names_below(area, chart.plotting_area().get_pixel_range(), names)?;
        }
        if n <= 12 {
            let values = matrix.iter().enumerate().flat_map(|(row, values)| {
                let y = n - 1 - row as i32;
                values.iter().enumerate().map(move |(column, &v)| {
                    let dark = (v - spec.range.0) / (spec.range.1 - spec.range.0) > 0.6
                        || (spec.range.0 < 0.0 && v.abs() > 0.6);
                    let style =
                        font(12).color(if dark { &WHITE } else { &BLACK }).pos(Pos::new(HPos::Center, VPos::Center));
                    Text::new(
                        format!("{v:.2}"),
                        (SegmentValue::CenterOf(column as i32), SegmentValue::CenterOf(y)),
                        style,
                    )
                })
            });
            chart.draw_series(values)?;
        }
        color_bar(&bar, spec.range, label_area)
    })
}

/// Writes `names` downwards under the x axis of a plot at `pixels`, one under each of its
/// equal cells. (plotters centres rotated tick labels on the axis, half of them hidden.)
fn names_below(area: &Area<'_>, pixels: (Range<i32>, Range<i32>), names: &[String]) -> Result<()> {
    let (x, y) = pixels;
    let cell = (x.end - x.start) as f64 / names.len().max(1) as f64;
    let style = font(13).transform(FontTransform::Rotate90).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, name) in names.iter().enumerate() {
        area.draw(&Text::new(name.as_str(), (x.start + ((k as f64 + 0.5) * cell) as i32, y.end + 8), style.clone()))?;
    }
    Ok(())
}

/// The colour scale of a heat map from `range.0` (bottom) to `range.1` (top).
fn color_bar(area: &Area<'_>, (low, high): (f64, f64), label_area: u32) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(44)
        .margin_bottom(label_area + 32)
        .margin_right(8)
        .right_y_label_area_size(54)
        .build_cartesian_2d(0f64..1f64, low..high)?;
    chart.configure_mesh().disable_mesh().disable_x_axis().y_labels(5).label_style(font(13)).draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|k| {
        let (a, b) = (low + (high - low) * k as f64 / steps as f64, low + (high - low) * (k + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, a), (1.0, b)], scale_color((a + b) / 2.0, (low, high)).filled())
    }))?;
    Ok(())
}

/// The colour of `v` on a heat map's scale: diverging (blue, white, red) when the range
/// starts below zero, white to dark blue otherwise.
fn scale_color(v: f64, (low, high): (f64, f64)) -> RGBColor {
    let blend = |to: [u8; 3], t: f64| {
        let [r, g, b] = to.map(|c| (255.0 + (c as f64 - 255.0) * t.clamp(0.0, 1.0)).round() as u8);
        RGBColor(r, g, b)
    };
    if low < 0.0 {
        let t = v / low.abs().max(high.abs());
        if t < 0.0 { blend(BLUE, -t) } else { blend(RED, t) }
    } else {
        blend([8, 48, 107], (v - low) / (high - low).max(1e-12))
    }
}

/// The reliability diagram of an evaluation: each confidence bin's accuracy (bars) against
/// its mean confidence (a red line), beside the diagonal of perfect calibration.
pub fn reliability_diagram(bins: &[CalibrationBin], ece: f64, split: &str, path: &Path) -> Result<()> {
    let width = 100.0 / bins.len().max(1) as f64;
    draw_png(path, (720, 680), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Reliability ({split}): ECE {:.2}% over {} bins", 100.0 * ece, bins.len()), font(22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..100f64, 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("confidence: probability of the predicted class (%)")
            .y_desc("accuracy (%)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        let filled: Vec<(f64, f64, f64)> = bins
            .iter()
            .enumerate()
            .filter_map(|(k, b)| Some((k as f64 * width, 100.0 * b.accuracy()?, 100.0 * b.mean_confidence()?)))
            .collect();
        chart
            .draw_series(
                filled
                    .iter()
                    .map(|&(x, acc, _)| Rectangle::new([(x, 0.0), (x + width, acc)], rgb(BLUE).mix(0.8).filled())),
            )?
            .label("accuracy of the bin")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], rgb(BLUE).mix(0.8).filled()));
        let outline = BLACK.stroke_width(1);
        chart.draw_series(filled.iter().map(|&(x, acc, _)| Rectangle::new([(x, 0.0), (x + width, acc)], outline)))?;
        let confidence = rgb(RED).stroke_width(3);
        chart
            .draw_series(
                filled.iter().map(|&(x, _, conf)| PathElement::new([(x, conf), (x + width, conf)], confidence)),
            )?
            .label("mean confidence of the bin")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], confidence));
        let diagonal = rgb(GREY).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(0.0, 0.0), (100.0, 100.0)], 8, 5, diagonal))?
            .label("perfect calibration")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], diagonal));
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// The training images of each class, most to fewest, coloured by many/medium/few; class
/// names along the axis for up to 20 classes.
pub fn class_counts(class_names: &[String], counts: &[i64], path: &Path) -> Result<()> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(counts[c]));
    let n = counts.len() as i32;
    let named = class_names.len() <= MAX_NAMED_CLASSES;
    let longest = if named { class_names.iter().map(|s| s.chars().count()).max().unwrap_or(1) } else { 4 };
    let label_area = (20 + 8 * longest as u32).min(180);
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    // Named classes go down the x axis by `names_below`; else their ranks.
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(k) if !named => (*k + 1).to_string(),
        _ => String::new(),
    };
    draw_png(path, (900, 420 + label_area), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Training images per class ({} classes, most to fewest)", counts.len()), font(22))
            .margin(12)
            .x_label_area_size(label_area + 20)
            .y_label_area_size(70)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..max * 1.05)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(20) as usize)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc(if named { "class" } else { "class rank" })
            .y_desc("training images")
            .label_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(order.iter().enumerate().map(|(rank, &c)| {
            let x = rank as i32;
            Rectangle::new(
                [(SegmentValue::Exact(x), 0.0), (SegmentValue::Exact(x + 1), counts[c] as f64)],
                rgb(shot_color(ShotGroup::of(counts[c]))).filled(),
            )
        }))?;
        if named {
            let sorted: Vec<String> = order.iter().map(|&c| class_names[c].clone()).collect();
            names_below(area, chart.plotting_area().get_pixel_range(), &sorted)?;
        }
        for group in ShotGroup::ALL {
            chart
                .draw_series(std::iter::empty::<Rectangle<(SegmentValue<i32>, f64)>>())?
                .label(group.describe())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], rgb(shot_color(group)).filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
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
