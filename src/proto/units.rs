//! Byte quantities with units, as in `minthroughput='1.5KB'` and the `who` reply's
//! `throughput='1KB/1.1KB/0.9KB/1KB/3KB'` (XEP-0037 "Stream Creation/Relay", "Stream peer
//! listing"; PROFILE 16).
//!
//! Units are `B KB MB GB TB` and 1024-based. The parser also takes `PB` and `EB` (the XEP
//! lists `EB`), lower-case units and a space before the unit, because being strict here would
//! only turn a client's harmless spelling into an error; the printer writes only `B`..`TB`,
//! upper-case, as PROFILE 16 says. A number without a unit means bytes.
//!
//! This module parses and prints; measuring throughput is `core::throughput`'s job.

use std::fmt;

/// Unit suffixes, index = power of 1024, as accepted by the parser.
const PARSE_UNITS: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];

/// Unit suffixes the printer uses (PROFILE 16 stops at TB).
const FORMAT_UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];

/// Decimal places beyond this many are ignored: enough for any u64 result, and it keeps the
/// exact integer arithmetic inside u128.
const MAX_DECIMALS: u32 = 19;

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// The string was empty (or only whitespace).
    Empty,
    /// The string did not have the shape `number [unit]`.
    Invalid(String),
    /// The unit was not one of `B KB MB GB TB PB EB`.
    UnknownUnit(String),
    /// The number was negative (use [`parse_rate_or_zero`] where the spec allows that).
    Negative(String),
    /// The value does not fit in a `u64` number of bytes.
    Overflow(String),
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::Empty => f.write_str("empty quantity"),
            UnitError::Invalid(s) => write!(f, "invalid quantity {s:?}"),
            UnitError::UnknownUnit(s) => {
                write!(f, "unknown unit in {s:?} (expected B, KB, MB, GB or TB)")
            }
            UnitError::Negative(s) => write!(f, "negative quantity {s:?}"),
            UnitError::Overflow(s) => write!(f, "quantity {s:?} is too large"),
        }
    }
}

impl std::error::Error for UnitError {}

/// Parses a quantity such as `1.5KB`, `20B`, `3MB` or `0` into bytes (per second, for a
/// rate), rounding down. Negative numbers are an error.
///
/// ```
/// use dsps::proto::units::parse_rate;
/// assert_eq!(parse_rate("1.5KB"), Ok(1536));
/// assert_eq!(parse_rate("20"), Ok(20));
/// ```
pub fn parse_rate(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(UnitError::Empty);
    }
    if t.starts_with('-') {
        return Err(UnitError::Negative(s.to_owned()));
    }
    let t = t.strip_prefix('+').unwrap_or(t);

    let number_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(number_len);
    let unit = unit.trim_start();

    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(UnitError::Invalid(s.to_owned()));
    }

    let power = if unit.is_empty() {
        0
    } else {
        PARSE_UNITS
            .iter()
            .position(|u| u.eq_ignore_ascii_case(unit))
            .ok_or_else(|| UnitError::UnknownUnit(s.to_owned()))?
    };
    let scale = 1u128 << (10 * power);
    let overflow = || UnitError::Overflow(s.to_owned());

    // Exact arithmetic: int * scale + floor(frac * scale / 10^digits).
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse::<u64>().map_err(|_| overflow())?.into()
    };
    let frac_digits = &frac_part[..frac_part.len().min(MAX_DECIMALS as usize)];
    let frac: u128 = if frac_digits.is_empty() {
        0
    } else {
        // At most 19 digits: always fits.
        frac_digits.parse::<u64>().map_err(|_| overflow())?.into()
    };
    let denominator = 10u128.pow(frac_digits.len() as u32);
    let bytes = int
        .checked_mul(scale)
        .and_then(|whole| whole.checked_add(frac * scale / denominator))
        .ok_or_else(overflow)?;
    u64::try_from(bytes).map_err(|_| overflow())
}

/// Like [`parse_rate`], but a negative number means 0, as the XEP says of `minthroughput`
/// ("If omitted or negative, 0 is assumed"). Garbage is still an error: the caller decides
/// whether to refuse the request or ignore the attribute. Omission is the caller's
/// `Option::None`.
///
/// ```
/// use dsps::proto::units::parse_rate_or_zero;
/// assert_eq!(parse_rate_or_zero("-1.5KB"), Ok(0));
/// assert!(parse_rate_or_zero("fast").is_err());
/// ```
pub fn parse_rate_or_zero(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    match t.strip_prefix('-') {
        // Parse the magnitude anyway so that `-fast` is still reported as garbage.
        Some(magnitude) => parse_rate(magnitude).map(|_| 0),
        None => parse_rate(t),
    }
}

/// Prints bytes per second in the largest unit where the value is at least 1, with at most
/// one decimal and no trailing `.0` (PROFILE 16). Negative and NaN print as `0B`.
///
/// ```
/// use dsps::proto::units::format_rate;
/// assert_eq!(format_rate(1126.0), "1.1KB");
/// assert_eq!(format_rate(0.0), "0B");
/// ```
pub fn format_rate(bytes_per_sec: f64) -> String {
    let value = if bytes_per_sec.is_nan() || bytes_per_sec < 0.0 {
        0.0
    } else {
        bytes_per_sec
    };
    let mut power = 0;
    while power + 1 < FORMAT_UNITS.len() && value >= 1024f64.powi(power as i32 + 1) {
        power += 1;
    }
    let mut tenths = (value / 1024f64.powi(power as i32) * 10.0).round();
    // Rounding can carry into the next unit (1023.96KB would print as 1024KB).
    if tenths >= 10240.0 && power + 1 < FORMAT_UNITS.len() {
        power += 1;
        tenths = (value / 1024f64.powi(power as i32) * 10.0).round();
    }
    // `as` saturates, which is what we want for absurd values (and infinity).
    let tenths = tenths as u64;
    let unit = FORMAT_UNITS[power];
    if tenths.is_multiple_of(10) {
        format!("{}{unit}", tenths / 10)
    } else {
        format!("{}.{}{unit}", tenths / 10, tenths % 10)
    }
}

/// Parses a `who` throughput string such as `1KB////4.8KB//3KB` into its fields, in bytes per
/// second; an empty field (allowed by the XEP for all but the first and last) is `None`.
/// Field `i` is the average over the last 2^i seconds of transfer time.
///
/// ```
/// use dsps::proto::units::parse_throughput;
/// let fields = parse_throughput("1KB////4.8KB//3KB").unwrap();
/// assert_eq!(fields[0], Some(1024));
/// assert_eq!(fields[1], None);
/// assert_eq!(fields.last(), Some(&Some(3072)));
/// ```
pub fn parse_throughput(s: &str) -> Result<Vec<Option<u64>>, UnitError> {
    s.split('/')
        .map(|field| {
            if field.trim().is_empty() {
                Ok(None)
            } else {
                parse_rate(field).map(Some)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_minthroughput_parses() {
        assert_eq!(parse_rate("1.5KB"), Ok(1536));
    }

    #[test]
    fn plain_numbers_and_units_parse() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("20B"), Ok(20));
        assert_eq!(parse_rate("20"), Ok(20));
        assert_eq!(parse_rate("3MB"), Ok(3 << 20));
        assert_eq!(parse_rate("2GB"), Ok(2 << 30));
        assert_eq!(parse_rate("1TB"), Ok(1 << 40));
        assert_eq!(parse_rate("1EB"), Ok(1 << 60));
        assert_eq!(parse_rate(" 1.5 kb "), Ok(1536));
        assert_eq!(parse_rate(".5KB"), Ok(512));
        assert_eq!(parse_rate("2.KB"), Ok(2048));
        assert_eq!(parse_rate("+4B"), Ok(4));
    }

    #[test]
    fn fractions_round_down() {
        assert_eq!(parse_rate("1.1KB"), Ok(1126));
        assert_eq!(parse_rate("0.9B"), Ok(0));
        assert_eq!(parse_rate("4.8KB"), Ok(4915));
        assert_eq!(parse_rate("0.33333333333333333333333KB"), Ok(341));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(parse_rate(""), Err(UnitError::Empty));
        assert_eq!(parse_rate("  "), Err(UnitError::Empty));
        assert!(matches!(parse_rate("KB"), Err(UnitError::Invalid(_))));
        assert!(matches!(parse_rate("."), Err(UnitError::Invalid(_))));
        assert!(matches!(parse_rate("1.2.3KB"), Err(UnitError::Invalid(_))));
        assert!(matches!(
            parse_rate("1.5XB"),
            Err(UnitError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_rate("1.5KBs"),
            Err(UnitError::UnknownUnit(_))
        ));
        assert!(matches!(parse_rate("1e3"), Err(UnitError::UnknownUnit(_))));
        assert!(matches!(parse_rate("-1KB"), Err(UnitError::Negative(_))));
        assert!(matches!(parse_rate("16EB"), Err(UnitError::Overflow(_))));
        assert!(matches!(
            parse_rate("99999999999999999999"),
            Err(UnitError::Overflow(_))
        ));
    }

    #[test]
    fn negative_minthroughput_means_zero() {
        assert_eq!(parse_rate_or_zero("-1.5KB"), Ok(0));
        assert_eq!(parse_rate_or_zero("-0"), Ok(0));
        assert_eq!(parse_rate_or_zero("1.5KB"), Ok(1536));
        assert!(parse_rate_or_zero("-fast").is_err());
        assert!(parse_rate_or_zero("").is_err());
    }

    #[test]
    fn rates_format_like_the_spec() {
        assert_eq!(format_rate(0.0), "0B");
        assert_eq!(format_rate(1.0), "1B");
        assert_eq!(format_rate(0.9), "0.9B");
        assert_eq!(format_rate(1023.0), "1023B");
        assert_eq!(format_rate(1024.0), "1KB");
        assert_eq!(format_rate(1126.0), "1.1KB");
        assert_eq!(format_rate(1536.0), "1.5KB");
        assert_eq!(format_rate(4.8 * 1024.0), "4.8KB");
        assert_eq!(format_rate(3.0 * 1024.0 * 1024.0), "3MB");
        assert_eq!(format_rate(5000.0 * 1024f64.powi(4)), "5000TB");
        assert_eq!(format_rate(-3.0), "0B");
        assert_eq!(format_rate(f64::NAN), "0B");
    }

    #[test]
    fn rounding_carries_into_the_next_unit() {
        assert_eq!(format_rate(1023.96), "1KB");
        assert_eq!(format_rate(1024.0 * 1024.0 - 1.0), "1MB");
    }

    #[test]
    fn formatted_rates_parse_back() {
        for s in ["0B", "20B", "1KB", "1.1KB", "1.5KB", "3MB", "4.8GB", "2TB"] {
            let bytes = parse_rate(s).unwrap();
            assert_eq!(format_rate(bytes as f64), s, "{s} -> {bytes}");
        }
        for bytes in [0u64, 1, 1023, 1024, 1536, 3 << 20] {
            assert_eq!(parse_rate(&format_rate(bytes as f64)), Ok(bytes));
        }
    }

    #[test]
    fn spec_throughput_string_parses() {
        assert_eq!(
            parse_throughput("1KB////4.8KB//3KB"),
            Ok(vec![
                Some(1024),
                None,
                None,
                None,
                Some(4915),
                None,
                Some(3072)
            ])
        );
        assert_eq!(
            parse_throughput("1KB/1.1KB/0.9KB/1KB/3KB"),
            Ok(vec![
                Some(1024),
                Some(1126),
                Some(921),
                Some(1024),
                Some(3072)
            ])
        );
        assert!(parse_throughput("1KB/x/3KB").is_err());
    }
}
