//! `ringex-perf compare RUN_A RUN_B`: the latency of two runs side by side.
//!
//! Every `.hgrm` file under RUN_A (subfolders included, so the folders of
//! `all` compare too) is paired with the file at the same relative path
//! under RUN_B. When no path matches but both runs hold exactly one
//! distribution, those two are paired. For each pair the report gives the
//! value at p50, p90, p99, p99.9, p99.99 and the maximum in both runs and
//! the ratio B / A (above 1: B is slower), and one SVG plot draws both
//! percentile lines. Runs on the calling thread.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hgrm::{parse, Distribution};
use crate::plot::{percentile_plot, percentile_series};
use crate::results::{file_safe, ResultsDir};

/// The percentiles compared (1.0 is the maximum).
pub const COMPARED_PERCENTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

/// One percentile of one paired distribution.
#[derive(Debug, Clone, Serialize)]
pub struct PercentileRatio {
    /// Percentile as a fraction (1.0: the maximum).
    pub percentile: f64,
    /// Value in run A, µs.
    pub a_us: f64,
    /// Value in run B, µs.
    pub b_us: f64,
    /// `b_us / a_us`; `None` when A's value is 0.
    pub ratio: Option<f64>,
}

/// One paired distribution.
#[derive(Debug, Clone, Serialize)]
pub struct PairComparison {
    /// The `.hgrm` file in run A, relative to it.
    pub a: String,
    /// The `.hgrm` file in run B, relative to it.
    pub b: String,
    /// Values recorded in A and in B.
    pub counts: (u64, u64),
    /// Per percentile.
    pub percentiles: Vec<PercentileRatio>,
    /// The plot of both, relative to the comparison's folder.
    pub plot: Option<String>,
}

/// The result of `ringex-perf compare`.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// Always `"compare"`.
    pub bench: &'static str,
    /// Run A's folder.
    pub run_a: String,
    /// Run B's folder.
    pub run_b: String,
    /// One entry per paired distribution.
    pub pairs: Vec<PairComparison>,
    /// Distributions of A with no partner in B, and of B with none in A.
    pub unpaired: Vec<String>,
    /// The comparison's own results folder, if written.
    pub results_dir: Option<String>,
}

/// Every `.hgrm` file under `root`, as paths relative to it, sorted.
pub fn hgrm_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() && depth < 4 {
                walk(root, &path, depth + 1, out)?;
            } else if path.extension().is_some_and(|e| e == "hgrm") {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_path_buf());
                }
            }
        }
        Ok(())
    }
    if !root.is_dir() {
        return Err(Error::Unexpected(format!(
            "{} is not a results folder",
            root.display()
        )));
    }
    let mut out = Vec::new();
    walk(root, root, 0, &mut out)?;
    out.sort();
    Ok(out)
}

fn load(root: &Path, rel: &Path) -> Result<Distribution> {
    let text = std::fs::read_to_string(root.join(rel))?;
    parse(&text).map_err(|e| Error::Unexpected(format!("{}: {e}", root.join(rel).display())))
}

/// Compares two results folders; writes `compare.txt`, `compare.json` and
/// one `compare-*.svg` per pair into `out` when it is given.
pub fn compare(a: &Path, b: &Path, out: Option<&ResultsDir>) -> Result<CompareReport> {
    let files_a = hgrm_files(a)?;
    let files_b = hgrm_files(b)?;
    let mut pairs: Vec<(PathBuf, PathBuf)> = files_a
        .iter()
        .filter(|f| files_b.contains(f))
        .map(|f| (f.clone(), f.clone()))
        .collect();
    if pairs.is_empty() && files_a.len() == 1 && files_b.len() == 1 {
        pairs.push((files_a[0].clone(), files_b[0].clone()));
    }
    if pairs.is_empty() {
        return Err(Error::Unexpected(format!(
            "no latency distributions to compare: {} has {} .hgrm files, {} has {}, none at the same path",
            a.display(),
            files_a.len(),
            b.display(),
            files_b.len()
        )));
    }
    let unpaired = files_a
        .iter()
        .filter(|f| !pairs.iter().any(|(pa, _)| pa == *f))
        .map(|f| format!("A: {}", f.display()))
        .chain(
            files_b
                .iter()
                .filter(|f| !pairs.iter().any(|(_, pb)| pb == *f))
                .map(|f| format!("B: {}", f.display())),
        )
        .collect();
    let label_a = run_label(a, "A");
    let label_b = run_label(b, "B");
    let mut report = CompareReport {
        bench: "compare",
        run_a: a.display().to_string(),
        run_b: b.display().to_string(),
        pairs: Vec::new(),
        unpaired,
        results_dir: out.map(|d| d.path().display().to_string()),
    };
    for (pa, pb) in pairs {
        let da = load(a, &pa)?;
        let db = load(b, &pb)?;
        let percentiles = COMPARED_PERCENTILES
            .iter()
            .map(|&p| {
                let (a_us, b_us) = (da.value_at(p), db.value_at(p));
                PercentileRatio {
                    percentile: p,
                    a_us,
                    b_us,
                    ratio: (a_us > 0.0).then(|| b_us / a_us),
                }
            })
            .collect();
        let plot = match out {
            Some(dir) => {
                let name = format!(
                    "compare-{}.svg",
                    file_safe(&pa.with_extension("").display().to_string())
                );
                percentile_plot(
                    &dir.path().join(&name),
                    &format!("{} : A vs B", pa.display()),
                    &[
                        percentile_series(format!("A {label_a}"), &da),
                        percentile_series(format!("B {label_b}"), &db),
                    ],
                )?;
                Some(name)
            }
            None => None,
        };
        report.pairs.push(PairComparison {
            a: pa.display().to_string(),
            b: pb.display().to_string(),
            counts: (da.total_count, db.total_count),
            percentiles,
            plot,
        });
    }
    if let Some(dir) = out {
        dir.write_text("compare.txt", &render_compare(&report))?;
        dir.write_json("compare.json", &report)?;
    }
    Ok(report)
}

fn run_label(p: &Path, fallback: &str) -> String {
    p.file_name().map_or_else(
        || fallback.to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `p50`, `p99.9`, `max`.
pub fn percentile_name(p: f64) -> String {
    if p >= 1.0 {
        "max".into()
    } else {
        let s = format!("{:.4}", p * 100.0);
        format!("p{}", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The human-readable comparison.
pub fn render_compare(r: &CompareReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf compare: ratio = B / A (above 1: B is slower)"
    );
    let _ = writeln!(s, "A: {}", r.run_a);
    let _ = writeln!(s, "B: {}", r.run_b);
    for p in &r.pairs {
        let _ = writeln!(
            s,
            "\n{}{}  (A {} values, B {} values)",
            p.a,
            if p.a == p.b {
                String::new()
            } else {
                format!(" vs {}", p.b)
            },
            p.counts.0,
            p.counts.1
        );
        let _ = writeln!(
            s,
            "{:>10} {:>12} {:>12} {:>8}",
            "", "A (us)", "B (us)", "B/A"
        );
        for x in &p.percentiles {
            let _ = writeln!(
                s,
                "{:>10} {:>12.3} {:>12.3} {:>8}",
                percentile_name(x.percentile),
                x.a_us,
                x.b_us,
                x.ratio.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
            );
        }
        if let Some(plot) = &p.plot {
            let _ = writeln!(s, "plot: {plot}");
        }
    }
    for u in &r.unpaired {
        let _ = writeln!(s, "not compared: {u}");
    }
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_named_as_in_the_tables() {
        assert_eq!(percentile_name(0.5), "p50");
        assert_eq!(percentile_name(0.999), "p99.9");
        assert_eq!(percentile_name(0.9999), "p99.99");
        assert_eq!(percentile_name(1.0), "max");
    }
}
