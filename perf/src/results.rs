//! The results folder every `ringex-perf` scenario writes.
//!
//! Layout (`perf-results/<scenario>-<UTC timestamp>/` unless `--out` names
//! another folder):
//!
//! ```text
//! summary.txt        the table printed on stdout
//! summary.json       the full report (the same object `--json` prints)
//! config.json        the options, the configuration file's values and the command line
//! config.toml        the configuration file given with --config, copied as read
//! machine.json       CPU model, logical CPUs, memory, kernel, frequency governor
//! *.hgrm             latency percentile distributions (HdrHistogram text format)
//! *.svg              latency percentile plots and throughput-vs-latency charts
//! ```
//!
//! Only the calling thread writes, after the scenario has finished.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys::Machine;

/// Where results go when `--out` is not given.
pub const DEFAULT_ROOT: &str = "perf-results";

/// A created results folder.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    path: PathBuf,
}

impl ResultsDir {
    /// Creates `out` (and its parents) or, when `out` is `None`, a fresh
    /// `perf-results/<scenario>-<timestamp>` (suffixed `-2`, `-3`, ... if it
    /// exists). An existing `out` is used as it is; files in it with the
    /// same names are replaced.
    pub fn create(out: Option<&Path>, scenario: &str) -> Result<ResultsDir> {
        let path = match out {
            Some(p) => p.to_path_buf(),
            None => unique(&Path::new(DEFAULT_ROOT).join(format!("{scenario}-{}", timestamp()))),
        };
        if path.exists() && !path.is_dir() {
            return Err(Error::Unexpected(format!(
                "results path {} exists and is not a folder",
                path.display()
            )));
        }
        std::fs::create_dir_all(&path)?;
        Ok(ResultsDir { path })
    }

    /// A subfolder (for `all`, one per scenario).
    pub fn child(&self, name: &str) -> Result<ResultsDir> {
        ResultsDir::create(Some(&self.path.join(name)), name)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a text file.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.path.join(name), text)?;
        Ok(())
    }

    /// Writes `value` as pretty JSON.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| Error::Unexpected(e.to_string()))?;
        self.write_text(name, &text)
    }

    /// Writes `h` (nanoseconds) as a `.hgrm` percentile distribution; returns the file name.
    pub fn write_hgrm(&self, stem: &str, h: &Histogram<u64>) -> Result<String> {
        let name = format!("{}.hgrm", file_safe(stem));
        self.write_text(&name, &crate::hgrm::percentile_distribution(h))?;
        Ok(name)
    }

    /// Writes `machine.json` and `config.json` (`options` plus the command
    /// line and, if one was read, the configuration file's path; the file
    /// itself is copied to `config.toml`).
    pub fn write_context(
        &self,
        machine: &Machine,
        options: &impl Serialize,
        config_file: Option<(&Path, &str)>,
    ) -> Result<()> {
        self.write_json("machine.json", machine)?;
        let config_json = serde_json::json!({
            "options": options,
            "config_file": config_file.map(|(p, _)| p.display().to_string()),
            "command_line": std::env::args().collect::<Vec<_>>(),
        });
        self.write_json("config.json", &config_json)?;
        if let Some((_, text)) = config_file {
            self.write_text("config.toml", text)?;
        }
        Ok(())
    }
}

fn unique(base: &Path) -> PathBuf {
    let mut dir = base.to_path_buf();
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = PathBuf::from(format!("{}-{n}", base.display()));
    }
    dir
}

/// `s` with every character other than ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` of now (UTC).
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_file_safe_and_timestamps_have_a_fixed_width() {
        assert_eq!(
            file_safe("dedicated:1,2,3 fsync-ms:5"),
            "dedicated_1_2_3_fsync-ms_5"
        );
        assert_eq!(timestamp().len(), "20260101T000000Z".len());
    }

    #[test]
    fn a_results_path_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(ResultsDir::create(Some(&file), "x").is_err());
        let dir = ResultsDir::create(Some(&tmp.path().join("a/b")), "x").unwrap();
        assert!(dir.path().is_dir());
    }
}
