//! Human-friendly sizes and durations, as written on the command line and in
//! settings files: `50KB`, `1.5MiB`, `500ms`, `1m30s`.
//!
//! # Sizes
//!
//! A size is a number (whole or decimal) with an optional unit, case-insensitive,
//! optionally separated by spaces: `50000`, `50000B`, `50KB`, `50K`, `1.5MiB`.
//!
//! **Units are binary: `1KB` = `1KiB` = `1K` = 1,024 bytes**, `1MB` = 1,048,576,
//! `1GB` = 2³⁰, `1TB` = 2⁴⁰. This is deliberate: every size this toolkit prints
//! ([`format_bytes`](crate::format_bytes), the seed's truncation marker
//! `showing first 48.8KB of 1.2MB`, the limit messages) uses 1,024-byte
//! kilobytes, so a value copied from the output back into a flag means what it
//! said, and `--memory 256MB` is reported back as `256.0MB`. It also matches how
//! memory limits are usually written (Docker, systemd, ulimit). A fractional
//! result is rounded down to whole bytes (`0.5KB` = 512, `1.3B` = 1).
//!
//! # Durations
//!
//! A duration is one or more `NUMBER UNIT` parts, added up: `500ms`, `30s`,
//! `1.5s`, `2m`, `1h`, `1m30s`, `1h 15m`. Units (case-insensitive): `ms`, `s`,
//! `m` (minutes), `h`. **A bare number means seconds** (`30` = `30s`), as for
//! `timeout(1)` and `sleep(1)`. Precision is one nanosecond; durations above
//! 2⁶⁴−1 nanoseconds (about 584 years) are refused as too large, so a parsed
//! duration can always be added to an `Instant` safely.
//!
//! ```
//! use std::time::Duration;
//! use sandbox_core::{parse_duration, parse_size};
//!
//! assert_eq!(parse_size("50KB"), Ok(51_200));
//! assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
//! assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
//! assert!(parse_size("12XB").unwrap_err().to_string().contains("unknown unit \"XB\""));
//! ```

use std::fmt;
use std::time::Duration;

/// The accepted size forms, quoted in every size error.
const SIZE_FORMS: &str = "use a number with an optional unit: B, KB, MB, GB, TB \
     (binary: 1KB = 1KiB = 1024 bytes; K, KiB, M, MiB, ... also accepted), e.g. 50000, 50KB, 1.5MiB";

/// The accepted duration forms, quoted in every duration error.
const DURATION_FORMS: &str = "use a number with a unit: ms, s, m, h, e.g. 500ms, 30s, 1.5m, \
     1h30m (a bare number means seconds)";

/// Why a size or duration could not be parsed. The message quotes the input,
/// says what is wrong and lists the accepted forms, so it can be shown to a user
/// as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The input is not a valid size.
    #[error("invalid size {input:?}: {problem}; {forms}", forms = SIZE_FORMS)]
    Size {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: UnitProblem,
    },
    /// The input is not a valid duration.
    #[error("invalid duration {input:?}: {problem}; {forms}", forms = DURATION_FORMS)]
    Duration {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        problem: UnitProblem,
    },
}

impl UnitError {
    /// What is wrong, without the input and the accepted forms.
    pub fn problem(&self) -> &UnitProblem {
        match self {
            UnitError::Size { problem, .. } | UnitError::Duration { problem, .. } => problem,
        }
    }
}

/// What exactly is wrong with a size or duration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnitProblem {
    /// Nothing but whitespace was given.
    Empty,
    /// A minus sign: sizes and durations cannot be negative.
    Negative,
    /// A unit (or other text) where a number was expected.
    ExpectedNumber {
        /// The text found instead.
        found: String,
    },
    /// A number that is not well-formed, such as `1.2.3` or `5.`.
    MalformedNumber {
        /// The malformed number.
        number: String,
    },
    /// A unit that is not one of the accepted ones.
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// In a duration of several parts, a number without its unit (`1m30`).
    MissingUnit {
        /// The number lacking a unit.
        number: String,
    },
    /// The value does not fit (sizes: 2⁶⁴−1 bytes; durations: 2⁶⁴−1 ns).
    TooLarge,
}

impl fmt::Display for UnitProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitProblem::Empty => f.write_str("it is empty"),
            UnitProblem::Negative => f.write_str("it cannot be negative"),
            UnitProblem::ExpectedNumber { found } => {
                write!(f, "expected a number, found {found:?}")
            }
            UnitProblem::MalformedNumber { number } => write!(f, "malformed number {number:?}"),
            UnitProblem::UnknownUnit { unit } => write!(f, "unknown unit {unit:?}"),
            UnitProblem::MissingUnit { number } => {
                write!(
                    f,
                    "{number:?} has no unit (only a lone number means seconds)"
                )
            }
            UnitProblem::TooLarge => f.write_str("it is too large"),
        }
    }
}

/// Parses a size in bytes, such as `50000`, `50KB` or `1.5MiB`. See the
/// [module documentation](self) for the accepted forms; units are binary
/// (`1KB` = 1,024 bytes).
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let fail = |problem| UnitError::Size {
        input: input.to_owned(),
        problem,
    };
    let mut rest = leading_checks(input).map_err(fail)?;
    let number = take_number(&mut rest).map_err(fail)?;
    let unit = rest.trim();
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(fail(UnitProblem::UnknownUnit {
                unit: unit.to_owned(),
            }))
        }
    };
    let bytes = number
        .scale(multiplier)
        .ok_or_else(|| fail(UnitProblem::TooLarge))?;
    u64::try_from(bytes).map_err(|_| fail(UnitProblem::TooLarge))
}

/// Parses a duration such as `500ms`, `30s`, `1.5m`, `1h30m` or `30` (seconds).
/// See the [module documentation](self) for the accepted forms.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let fail = |problem| UnitError::Duration {
        input: input.to_owned(),
        problem,
    };
    let mut rest = leading_checks(input).map_err(fail)?;
    let mut total_nanos: u128 = 0;
    let mut parts = 0;
    loop {
        let number = take_number(&mut rest).map_err(fail)?;
        parts += 1;
        rest = rest.trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_len);
        let nanos_per_unit: u128 = match unit.to_ascii_lowercase().as_str() {
            // A lone number is seconds; in `1m30` the `30` is more likely a
            // mistake than seconds, so it is refused rather than guessed.
            "" if parts == 1 && after.trim().is_empty() => 1_000_000_000,
            "" => {
                return Err(fail(UnitProblem::MissingUnit {
                    number: number.text.to_owned(),
                }))
            }
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(fail(UnitProblem::UnknownUnit {
                    unit: unit.to_owned(),
                }))
            }
        };
        total_nanos = number
            .scale(nanos_per_unit)
            .and_then(|nanos| total_nanos.checked_add(nanos))
            .filter(|&nanos| nanos <= u128::from(u64::MAX))
            .ok_or_else(|| fail(UnitProblem::TooLarge))?;
        rest = after.trim_start();
        if rest.is_empty() {
            break;
        }
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| fail(UnitProblem::TooLarge))?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration compactly, in the same syntax [`parse_duration`] reads:
/// `0s`, `250ms`, `2s`, `1.5s`, `2m`, `1m30s`, `1h`, `2h5m`.
///
/// Whole minutes and hours are shown as such; a remainder below one second is
/// shown with up to three decimals of a second, and anything finer than a
/// millisecond is dropped once the duration reaches one millisecond (these are
/// messages for people).
pub fn format_duration(duration: Duration) -> String {
    let total_ms = duration.as_millis();
    if duration.is_zero() {
        return "0s".to_owned();
    }
    if total_ms == 0 {
        // Rare (only programmatic values get here), but must not print as `0ms`.
        let nanos = format!("{:06}", duration.subsec_nanos());
        return format!("0.{}ms", nanos.trim_end_matches('0'));
    }
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let hours = total_ms / 3_600_000;
    let minutes = total_ms / 60_000 % 60;
    let seconds = total_ms / 1000 % 60;
    let millis = total_ms % 1000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || millis > 0 {
        out.push_str(&seconds.to_string());
        if millis > 0 {
            let decimals = format!("{millis:03}");
            out.push('.');
            out.push_str(decimals.trim_end_matches('0'));
        }
        out.push('s');
    }
    out
}

/// Rejects what no size or duration can be, and returns the trimmed input.
fn leading_checks(input: &str) -> Result<&str, UnitProblem> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UnitProblem::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(UnitProblem::Negative);
    }
    Ok(trimmed)
}

/// A decimal number as written, kept exact (no floating point) so that
/// `1.1s` is exactly 1,100 ms and `0.5KB` exactly 512 bytes.
struct Decimal<'a> {
    text: &'a str,
    whole: &'a str,
    fraction: &'a str,
}

impl Decimal<'_> {
    /// `self * multiplier`, rounded down; `None` on overflow.
    fn scale(&self, multiplier: u128) -> Option<u128> {
        let whole = parse_digits(self.whole)?.checked_mul(multiplier)?;
        // Digits past the 18th cannot change the result for any multiplier used
        // here (all are below 10^13), and dropping them keeps 10^len in range.
        let fraction = &self.fraction[..self.fraction.len().min(18)];
        let fraction_part = if fraction.is_empty() {
            0
        } else {
            let scale = 10u128.pow(fraction.len() as u32);
            parse_digits(fraction)?.checked_mul(multiplier)? / scale
        };
        whole.checked_add(fraction_part)
    }
}

/// Parses ASCII digits; `None` when the value passes `u128`.
fn parse_digits(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, digit| {
        acc.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
}

/// Splits a leading decimal number (`12`, `1.5`, `.5`) off `rest`.
fn take_number<'a>(rest: &mut &'a str) -> Result<Decimal<'a>, UnitProblem> {
    let text_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (text, after) = rest.split_at(text_len);
    if text.is_empty() {
        return Err(UnitProblem::ExpectedNumber {
            found: rest.to_owned(),
        });
    }
    let malformed = || UnitProblem::MalformedNumber {
        number: text.to_owned(),
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let no_digits = whole.is_empty() && fraction.is_empty();
    let dangling_point = text.ends_with('.');
    if no_digits || dangling_point || fraction.contains('.') {
        return Err(malformed());
    }
    *rest = after;
    Ok(Decimal {
        text,
        whole,
        fraction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_problem(input: &str) -> UnitProblem {
        parse_size(input).unwrap_err().problem().clone()
    }

    fn duration_problem(input: &str) -> UnitProblem {
        parse_duration(input).unwrap_err().problem().clone()
    }

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("50000"), Ok(50_000));
        assert_eq!(parse_size("50000B"), Ok(50_000));
        assert_eq!(parse_size("7b"), Ok(7));
    }

    #[test]
    fn size_units_are_binary_and_case_insensitive() {
        for kb in ["50KB", "50kb", "50K", "50k", "50KiB", "50kib"] {
            assert_eq!(parse_size(kb), Ok(51_200), "{kb}");
        }
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("256MB"), Ok(256 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
    }

    #[test]
    fn parsed_sizes_print_back_as_written() {
        assert_eq!(crate::format_bytes(parse_size("256MB").unwrap()), "256.0MB");
        assert_eq!(crate::format_bytes(parse_size("48.8KB").unwrap()), "48.8KB");
    }

    #[test]
    fn fractional_sizes_round_down_to_whole_bytes() {
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("0.5KB"), Ok(512));
        assert_eq!(parse_size(".5K"), Ok(512));
        assert_eq!(parse_size("1.3"), Ok(1));
        assert_eq!(parse_size("0.0001KB"), Ok(0));
    }

    #[test]
    fn sizes_tolerate_spaces_around_and_before_the_unit() {
        assert_eq!(parse_size(" 50 KB "), Ok(51_200));
    }

    #[test]
    fn size_errors_say_what_is_wrong() {
        assert_eq!(
            size_problem("12XB"),
            UnitProblem::UnknownUnit { unit: "XB".into() }
        );
        assert_eq!(size_problem(""), UnitProblem::Empty);
        assert_eq!(size_problem("  "), UnitProblem::Empty);
        assert_eq!(size_problem("-5KB"), UnitProblem::Negative);
        assert_eq!(
            size_problem("KB"),
            UnitProblem::ExpectedNumber { found: "KB".into() }
        );
        assert_eq!(
            size_problem("1.2.3KB"),
            UnitProblem::MalformedNumber {
                number: "1.2.3".into()
            }
        );
        assert_eq!(
            size_problem("5.KB"),
            UnitProblem::MalformedNumber {
                number: "5.".into()
            }
        );
        assert_eq!(
            size_problem("5 KB extra"),
            UnitProblem::UnknownUnit {
                unit: "KB extra".into()
            }
        );
    }

    #[test]
    fn sizes_past_u64_are_too_large() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(size_problem("18446744073709551616"), UnitProblem::TooLarge);
        assert_eq!(size_problem("16777216TB"), UnitProblem::TooLarge);
        assert_eq!(
            size_problem("999999999999999999999999999999999999999999"),
            UnitProblem::TooLarge
        );
    }

    #[test]
    fn size_error_message_quotes_input_and_lists_forms() {
        assert_eq!(
            parse_size("12XB").unwrap_err().to_string(),
            "invalid size \"12XB\": unknown unit \"XB\"; use a number with an optional unit: \
             B, KB, MB, GB, TB (binary: 1KB = 1KiB = 1024 bytes; K, KiB, M, MiB, ... also \
             accepted), e.g. 50000, 50KB, 1.5MiB"
        );
    }

    #[test]
    fn durations_accept_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2MS"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn fractional_durations_are_exact() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.1s"), Ok(Duration::from_millis(1100)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.000001ms"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn duration_parts_add_up() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 15m"), Ok(Duration::from_secs(4500)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn duration_errors_say_what_is_wrong() {
        assert_eq!(
            duration_problem("5parsecs"),
            UnitProblem::UnknownUnit {
                unit: "parsecs".into()
            }
        );
        assert_eq!(
            duration_problem("1m30"),
            UnitProblem::MissingUnit {
                number: "30".into()
            }
        );
        assert_eq!(
            duration_problem("30 s x"),
            UnitProblem::ExpectedNumber { found: "x".into() }
        );
        assert_eq!(duration_problem("-1s"), UnitProblem::Negative);
        assert_eq!(duration_problem(""), UnitProblem::Empty);
        assert_eq!(
            duration_problem("s"),
            UnitProblem::ExpectedNumber { found: "s".into() }
        );
        assert_eq!(duration_problem("10000000000h"), UnitProblem::TooLarge);
    }

    #[test]
    fn duration_error_message_quotes_input_and_lists_forms() {
        assert_eq!(
            parse_duration("5parsecs").unwrap_err().to_string(),
            "invalid duration \"5parsecs\": unknown unit \"parsecs\"; use a number with a unit: \
             ms, s, m, h, e.g. 500ms, 30s, 1.5m, 1h30m (a bare number means seconds)"
        );
    }

    #[test]
    fn format_duration_is_compact_and_parses_back() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(1250), "1.25s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(7500), "2h5m"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
        assert_eq!(format_duration(Duration::from_micros(7)), "0.007ms");
        assert_eq!(
            format_duration(Duration::from_millis(1500) + Duration::from_micros(3)),
            "1.5s"
        );
    }
}
