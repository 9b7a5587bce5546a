//! SVG pictures of a run, drawn with `plotters` (SVG backend only: text is
//! written as SVG `<text>`, so no font library is needed).
//!
//! - [`percentile_plot`]: latency against percentile, the way HdrHistogram
//!   plots are drawn: the x axis is `log10(1/(1-p))`, labelled 90%, 99%,
//!   99.9%, ..., so each decade of tail gets the same width; one line per
//!   rate or configuration.
//! - [`throughput_latency_chart`]: latency percentiles against achieved
//!   throughput, one line per percentile (or per configuration);
//!   [`line_chart`] is the same picture with any y axis (recovery time
//!   against tail length, replay time against commands replayed).
//!
//! Everything runs on the calling thread.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::hgrm::Distribution;

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Unexpected(format!("plot: {e}"))
}

/// The x position of percentile `p` (a fraction): `log10(1/(1-p))`.
pub fn percentile_x(p: f64) -> f64 {
    (1.0 / (1.0 - p.min(1.0 - 1e-12))).log10()
}

/// The axis label of x position `x` (whole decades): 0%, 90%, 99%, 99.9%, ...
pub fn percentile_label(x: f64) -> String {
    let k = x.round() as i32;
    if k <= 0 {
        return "0%".into();
    }
    if k == 1 {
        return "90%".into();
    }
    format!(
        "99{}{}%",
        if k > 2 { "." } else { "" },
        "9".repeat((k - 2) as usize)
    )
}

/// A latency-by-percentile line from a distribution: every row below the
/// 100th percentile, as (x = [`percentile_x`], y = value in µs).
pub fn percentile_series(label: impl Into<String>, d: &Distribution) -> Series {
    Series {
        label: label.into(),
        points: d
            .points
            .iter()
            .filter(|p| p.percentile < 1.0)
            .map(|p| (percentile_x(p.percentile), p.value_us))
            .collect(),
    }
}

/// Draws latency percentile lines (from [`percentile_series`]) to an SVG file.
pub fn percentile_plot(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .ceil()
        .min(9.0);
    let max_y = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x, 0.0..(max_y * 1.05).max(1e-3))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(max_x as usize + 1)
        .x_label_formatter(&|x| {
            // Only whole decades carry a label; the mesh may put ticks between.
            if (x - x.round()).abs() < 1e-6 {
                percentile_label(*x)
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(plot_err)?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Draws latency (y, µs) against throughput (x, per second) to an SVG file,
/// one line with point markers per series.
pub fn throughput_latency_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[Series],
) -> Result<()> {
    line_chart(path, title, x_desc, "latency (µs)", series)
}

/// Draws `series` as lines with point markers to an SVG file, both axes
/// from zero (x labels shortened: 1.5M, 250k).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..(max_x * 1.1).max(1.0), 0.0..(max_y * 1.1).max(1e-3))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| human(*x))
        .draw()
        .map_err(plot_err)?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// 1.5M, 250k, 12.
fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_positions_and_labels_follow_the_nines() {
        assert!((percentile_x(0.9) - 1.0).abs() < 1e-9);
        assert!((percentile_x(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
        assert!(percentile_x(1.0).is_finite());
    }

    #[test]
    fn both_pictures_are_written_as_svg() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Series {
            label: "a".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0), (3.0, 10.0)],
        };
        let p = tmp.path().join("p.svg");
        percentile_plot(&p, "t", std::slice::from_ref(&s)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("<svg") && text.contains("99.9%"), "{text}");
        let t = tmp.path().join("t.svg");
        throughput_latency_chart(&t, "t", "commands/s", &[s]).unwrap();
        assert!(std::fs::read_to_string(&t).unwrap().contains("<circle"));
    }
}
