//! HdrHistogram's percentile-distribution text format (`.hgrm`): writing
//! it from an [`hdrhistogram::Histogram`] and reading it back, so that
//! plots and `ringex-perf compare` work from the files a run left behind
//! (and from `.hgrm` files of other tools, such as Java's
//! `HistogramLogProcessor`).
//!
//! Values in the file are microseconds; histograms here record
//! nanoseconds. Everything in this module runs on the calling thread.

use hdrhistogram::Histogram;

use crate::error::{Error, Result};

/// One row of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmPoint {
    /// Value at this percentile, microseconds.
    pub value_us: f64,
    /// Percentile as a fraction, 0.0..=1.0.
    pub percentile: f64,
    /// Values recorded at or below `value_us`.
    pub total_count: u64,
}

/// A percentile distribution read from a `.hgrm` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Rows in file order (percentile ascending).
    pub points: Vec<HgrmPoint>,
    /// The `#[Max = ...]` footer, microseconds.
    pub max_us: f64,
    /// The `Total count` footer.
    pub total_count: u64,
}

impl Distribution {
    /// The value at `percentile` (a fraction): the first row whose
    /// percentile reaches it, as HdrHistogram's `valueAtPercentile`
    /// would answer within the file's resolution; 1.0 gives the maximum.
    pub fn value_at(&self, percentile: f64) -> f64 {
        if percentile >= 1.0 {
            return self.max_us;
        }
        self.points
            .iter()
            .find(|p| p.percentile >= percentile)
            .map_or(self.max_us, |p| p.value_us)
    }
}

/// Writes `h` (nanoseconds) in HdrHistogram's percentile-distribution text
/// format (values in microseconds, five ticks per half distance), as Java's
/// `outputPercentileDistribution(out, 5, 1000.0)` does.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        (2 * 10u32.pow(h.sigfig() as u32)).next_power_of_two()
    );
    s
}

/// Reads a percentile distribution. Rows are `value percentile count
/// [1/(1-p)]`; the header line and `#` footers other than `Max` are
/// skipped. Anything else is an error naming the line.
pub fn parse(text: &str) -> Result<Distribution> {
    let bad = |n: usize, why: &str| Error::Unexpected(format!(".hgrm line {}: {why}", n + 1));
    let mut points = Vec::new();
    let mut max_us = None;
    let mut total_count = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Value") {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            if let Some(rest) = footer.strip_prefix("Max") {
                // "#[Max     =      123.456, Total count    =       1000]"
                let mut fields = rest.split(',');
                let max = fields
                    .next()
                    .and_then(|f| f.trim().trim_start_matches('=').trim().parse::<f64>().ok())
                    .ok_or_else(|| bad(n, "unreadable Max"))?;
                let count = fields
                    .next()
                    .and_then(|f| f.split('=').nth(1))
                    .and_then(|f| f.trim().trim_end_matches(']').trim().parse::<u64>().ok())
                    .ok_or_else(|| bad(n, "unreadable Total count"))?;
                max_us = Some(max);
                total_count = Some(count);
            }
            continue;
        }
        let mut f = line.split_whitespace();
        let value_us = f.next().and_then(|v| v.parse::<f64>().ok());
        let percentile = f.next().and_then(|v| v.parse::<f64>().ok());
        let count = f.next().and_then(|v| v.parse::<u64>().ok());
        match (value_us, percentile, count) {
            (Some(value_us), Some(percentile), Some(total_count))
                if value_us.is_finite() && (0.0..=1.0).contains(&percentile) =>
            {
                points.push(HgrmPoint {
                    value_us,
                    percentile,
                    total_count,
                })
            }
            _ => return Err(bad(n, "expected `value percentile count`")),
        }
    }
    if points.is_empty() {
        return Err(Error::Unexpected(".hgrm file has no rows".into()));
    }
    let last = points[points.len() - 1];
    Ok(Distribution {
        max_us: max_us.unwrap_or(last.value_us),
        total_count: total_count.unwrap_or(last.total_count),
        points,
    })
}

/// A histogram of nanoseconds with the bounds every scenario uses:
/// 1 ns to one hour, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        h
    }

    #[test]
    fn the_percentile_distribution_has_the_hgrm_shape() {
        let text = percentile_distribution(&sample());
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     ="));
        assert!(text
            .lines()
            .any(|l| l.contains(" 1.000000000000      10000")));
    }

    #[test]
    fn a_written_distribution_reads_back_with_its_percentiles() {
        let h = sample();
        let d = parse(&percentile_distribution(&h)).unwrap();
        assert_eq!(d.total_count, 10_000);
        assert!((d.max_us - h.max() as f64 / 1000.0).abs() < 0.01);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = h.value_at_quantile(q) as f64 / 1000.0;
            let got = d.value_at(q);
            assert!((got - want).abs() <= want * 0.002, "q {q}: {got} vs {want}");
        }
        assert!(d
            .points
            .windows(2)
            .all(|w| w[0].percentile <= w[1].percentile));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("").is_err());
        assert!(parse("Value Percentile\nabc def ghi\n").is_err());
        assert!(parse("1.0 7.5 10\n").is_err());
        assert!(parse("1.0 0.5 10\n#[Max = x, Total count = 3]\n").is_err());
        assert_eq!(parse("1.0 0.5 10\n2.0 1.0 20\n").unwrap().max_us, 2.0);
    }
}
