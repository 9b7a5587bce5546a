//! Decimal strings at the edge: integer engine units ↔ exact decimals.
//!
//! A price or quantity in a request must be an exact multiple of the
//! market's unit (`10^-scale`); anything finer is rejected, never rounded
//! (DESIGN §4). Parsing uses `rust_decimal`.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Formats `value` units of `10^-scale` as a decimal string with at least
/// `min_fraction` fraction digits (`fmt_decimal(56, 2, 4)` = `"0.5600"`).
pub fn fmt_decimal(value: i128, scale: u32, min_fraction: u32) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        (i.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), format!("{digits:0>scale$}"))
    };
    let mut frac = frac;
    while frac.len() < min_fraction as usize {
        frac.push('0');
    }
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// A binary price in cents as Kalshi's dollar string (`56` → `"0.5600"`).
pub fn dollars(cents: i64) -> String {
    fmt_decimal(i128::from(cents), 2, 4)
}

/// Parses a decimal string into whole units of `10^-scale`. Errors say why
/// (not a number, too many decimal places, out of range).
pub fn parse_decimal(text: &str, scale: u32) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 40 {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let d = Decimal::from_str(text).map_err(|_| format!("{text:?} is not a decimal number"))?;
    let d = d.normalize();
    if d.scale() > scale {
        return Err(format!("{text:?} has more than {scale} decimal places"));
    }
    let factor = 10i128
        .checked_pow(scale - d.scale())
        .ok_or_else(|| format!("{text:?} is out of range"))?;
    let value = d
        .mantissa()
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is out of range"))?;
    i64::try_from(value).map_err(|_| format!("{text:?} is out of range"))
}

/// [`parse_decimal`] for a quantity: must be positive.
pub fn parse_quantity(text: &str, scale: u32) -> Result<u64, String> {
    let v = parse_decimal(text, scale)?;
    u64::try_from(v)
        .ok()
        .filter(|&q| q > 0)
        .ok_or_else(|| format!("quantity {text:?} must be positive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_padding_and_sign() {
        assert_eq!(dollars(56), "0.5600");
        assert_eq!(dollars(5), "0.0500");
        assert_eq!(fmt_decimal(12345, 2, 0), "123.45");
        assert_eq!(fmt_decimal(-5, 3, 0), "-0.005");
        assert_eq!(fmt_decimal(7, 0, 0), "7");
    }

    #[test]
    fn parses_exact_multiples_only() {
        assert_eq!(parse_decimal("123.45", 2), Ok(12345));
        assert_eq!(parse_decimal("0.5600", 2), Ok(56));
        assert_eq!(parse_decimal("3", 4), Ok(30000));
        assert!(parse_decimal("0.565", 2)
            .unwrap_err()
            .contains("decimal places"));
        assert!(parse_decimal("abc", 2).is_err());
        assert!(parse_decimal("1e400", 2).is_err());
        assert!(parse_decimal("99999999999999999999", 2).is_err());
        assert!(parse_quantity("-1", 0).is_err());
        assert!(parse_quantity("0", 0).is_err());
    }
}
