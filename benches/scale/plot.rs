//! Curves: each measure at every size, printed as a table with how it
//! grows, and drawn as an SVG on log-log axes.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// One measure at several sizes.
pub struct Curve {
    /// File name of its plot, without the extension.
    pub file: String,
    /// What is measured, with its unit.
    pub title: String,
    /// What the size counts.
    pub size: String,
    /// (size, value), sizes increasing.
    pub points: Vec<(f64, f64)>,
}

/// The exponent `k` of the best fit `value ~ size^k` (least squares on
/// logarithms), and what it says.
pub fn growth(points: &[(f64, f64)]) -> Option<(f64, &'static str)> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let var: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let cov: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let k = cov / var;
    // A logarithm grows by a factor of 1.5 from 10^4 to 10^6, an
    // exponent of about 0.09: below 0.15 the points cannot tell it from a
    // constant, so both are named.
    let says = match k {
        k if k < -0.15 => "falls as size grows",
        k if k < 0.15 => "about constant (or logarithmic)",
        k if k < 0.75 => "sublinear",
        k if k < 1.25 => "linear",
        _ => "faster than linear",
    };
    Some((k, says))
}

/// Every curve of a run.
#[derive(Default)]
pub struct Curves(Vec<Curve>);

impl Curves {
    /// Adds one measure.
    pub fn add(&mut self, file: &str, title: &str, size: &str, points: Vec<(f64, f64)>) {
        self.0.push(Curve {
            file: file.into(),
            title: title.into(),
            size: size.into(),
            points,
        });
    }

    /// Prints a table per measure and writes its plot into `dir`.
    pub fn finish(&self, dir: &Path) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("no folder for the plots at {}: {e}", dir.display());
        }
        for c in &self.0 {
            println!("\n{}", table(c));
            let path = dir.join(format!("{}.svg", c.file));
            match draw(c, &path) {
                Ok(()) => println!("plot: {}", path.display()),
                Err(e) => eprintln!("plot {} not drawn: {e}", path.display()),
            }
        }
    }
}

fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn table(c: &Curve) -> String {
    let mut out = format!("| {} | {} |\n|---|---|\n", c.size, c.title);
    for (x, y) in &c.points {
        let _ = writeln!(out, "| {} | {} |", figure(*x), figure(*y));
    }
    match growth(&c.points) {
        Some((k, says)) => {
            let _ = write!(out, "grows: {says} (exponent {k:.2})");
        }
        None => out.push_str("grows: not enough sizes to say"),
    }
    out
}

fn span(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(0f64, f64::max);
    if !(lo.is_finite() && lo > 0.0) {
        return (1.0, 10.0);
    }
    // Room above and below, and a decade at least, so a flat line is drawn
    // inside its frame.
    let (lo, hi) = (lo / 1.5, (hi * 1.5).max(lo * 10.0));
    (lo, hi)
}

fn draw(c: &Curve, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = span(c.points.iter().map(|p| p.0));
    let (y0, y1) = span(c.points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(c.size.as_str())
        .y_desc(c.title.as_str())
        .x_label_formatter(&|v| figure(*v))
        .y_label_formatter(&|v| figure(*v))
        .draw()?;
    chart.draw_series(LineSeries::new(c.points.iter().copied(), &BLUE))?;
    chart.draw_series(c.points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
    root.present()?;
    Ok(())
}
