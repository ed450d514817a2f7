//! Charts (SVG) of what people would rather look at than read: throughput against the
//! number of processes, and the distributions of hand-off and abandonment latencies. Each
//! scenario hands its data to the report; the report writes one SVG per chart beside the
//! Markdown file (`BENCHMARKS-charts/`) and links them.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a file name, labels, and its lines.
pub struct Chart {
    /// The SVG's file name.
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic x axis (latencies spanning orders of magnitude).
    pub log_x: bool,
    pub series: Vec<Series>,
}

/// The empirical distribution of `samples` (ns) as (latency in µs, fraction ≤ it), thinned
/// to at most 200 points.
pub fn cdf_us(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(200);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i] / 1e3, (i + 1) as f64 / n as f64))
        .collect();
    points.push((v[n - 1] / 1e3, 1.0));
    points
}

/// Colours that stay apart on white, one per peer (namedmutex first).
const COLOURS: [RGBColor; 7] = [
    RGBColor(200, 30, 30),
    RGBColor(30, 90, 200),
    RGBColor(30, 150, 60),
    RGBColor(150, 90, 20),
    RGBColor(130, 40, 160),
    RGBColor(20, 150, 160),
    RGBColor(90, 90, 90),
];

/// Writes `chart` as `dir/chart.file`.
pub fn write(chart: &Chart, dir: &Path) -> Result<(), String> {
    let path = dir.join(&chart.file);
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.is_empty() {
        return Err(format!("{}: no data", chart.file));
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = all.iter().fold(0f64, |m, p| m.max(p.1)) * 1.1;
    if chart.log_x {
        x0 = 10f64.powf(x0.max(1e-3).log10().floor());
        x1 = 10f64.powf(x1.log10().ceil());
    } else {
        x0 = 0.0;
        x1 *= 1.05;
    }
    let root = SVGBackend::new(&path, (720, 420)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", chart.file);
    root.fill(&WHITE).map_err(e)?;
    if chart.log_x {
        plot(&root, chart, (x0..x1).log_scale(), y1, false)?;
    } else {
        plot(&root, chart, x0..x1, y1, true)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Draws `chart` on `root` with the x axis `x` (linear or logarithmic) and y from 0 to `y1`;
/// `dots`: mark each point (few points per line).
fn plot<X>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &Chart,
    x: X,
    y1: f64,
    dots: bool,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", chart.file);
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x, 0f64..y1)
        .map_err(e)?;
    c.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .draw()
        .map_err(e)?;
    for (i, s) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // Labels come from the tables, where namedmutex is in bold (`**`).
        c.draw_series(LineSeries::new(
            s.points.iter().copied(),
            colour.stroke_width(2),
        ))
        .map_err(e)?
        .label(s.label.replace('*', ""))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        if dots {
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(e)?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e)?;
    Ok(())
}
