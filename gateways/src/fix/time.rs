//! UTC timestamps in FIX text form (`YYYYMMDD-HH:MM:SS[.sss]`), without a
//! date library: the conversions are Howard Hinnant's days-from-civil
//! algorithms on milliseconds since the Unix epoch.
//!
//! Any thread: pure functions.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The current wall-clock time in milliseconds since the epoch.
pub fn now_millis() -> Millis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        Err(_) => 0,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_digits(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut buf = [b'0'; 8];
    let mut v = value.unsigned_abs();
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Appends `YYYYMMDD-HH:MM:SS.sss` for `millis` to `out`.
pub fn write_timestamp_millis(out: &mut Vec<u8>, millis: Millis) {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    push_digits(out, y, 4);
    push_digits(out, m, 2);
    push_digits(out, d, 2);
    out.push(b'-');
    push_digits(out, in_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, in_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, in_day / 1000 % 60, 2);
    out.push(b'.');
    push_digits(out, in_day % 1000, 3);
}

/// `YYYYMMDD-HH:MM:SS.sss` for `millis`.
pub fn format_timestamp_millis(millis: Millis) -> String {
    let mut out = Vec::with_capacity(21);
    write_timestamp_millis(&mut out, millis);
    String::from_utf8(out).unwrap_or_default()
}

/// `YYYYMMDD-HH:MM:SS` (whole seconds) for `millis`.
pub fn format_timestamp_seconds(millis: Millis) -> String {
    let mut s = format_timestamp_millis(millis);
    s.truncate(17);
    s
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')),
    )
}

/// Parses `YYYYMMDD` into days since the epoch, checking month and day ranges.
pub fn parse_date(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != 8 {
        return None;
    }
    let y = digits(&bytes[0..4])?;
    let m = digits(&bytes[4..6])?;
    let d = digits(&bytes[6..8])?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `HH:MM:SS[.fraction]` (fraction of 1 to 9 digits) into
/// milliseconds since midnight.
pub fn parse_time_of_day(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < 8 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    let h = digits(&bytes[0..2])?;
    let mi = digits(&bytes[3..5])?;
    let s = digits(&bytes[6..8])?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut ms = 0;
    if bytes.len() > 8 {
        let frac = &bytes[9..];
        if bytes[8] != b'.' || frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let value = digits(frac)?;
        ms = match frac.len() {
            1 => value * 100,
            2 => value * 10,
            3 => value,
            n => value / 10i64.pow(n as u32 - 3),
        };
    }
    Some(((h * 60 + mi) * 60 + s) * 1000 + ms)
}

/// Parses a FIX UTCTimestamp, `YYYYMMDD-HH:MM:SS[.fraction]`, into
/// milliseconds since the epoch.
pub fn parse_timestamp(bytes: &[u8]) -> Option<Millis> {
    if bytes.len() < 17 || bytes[8] != b'-' {
        return None;
    }
    let days = parse_date(&bytes[..8])?;
    let time = parse_time_of_day(&bytes[9..])?;
    Some(days * 86_400_000 + time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = 1_700_000_123_456;
        let s = format_timestamp_millis(t);
        assert_eq!(s, "20231114-22:15:23.456");
        assert_eq!(parse_timestamp(s.as_bytes()), Some(t));
        assert_eq!(format_timestamp_seconds(t), "20231114-22:15:23");
        assert_eq!(parse_timestamp(b"20231114-22:15:23"), Some(t - 456));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            &b"20040415"[..],
            b"20041315-00:00:00",
            b"20040415-24:00:00",
            b"20040415-00:00:00.",
            b"2004041a-00:00:00",
            b"20040415 00:00:00",
        ] {
            assert_eq!(
                parse_timestamp(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_epoch_and_leap_days_are_exact() {
        assert_eq!(parse_timestamp(b"19700101-00:00:00.000"), Some(0));
        let leap = parse_timestamp(b"20240229-12:00:00").unwrap();
        assert_eq!(format_timestamp_seconds(leap), "20240229-12:00:00");
    }
}
