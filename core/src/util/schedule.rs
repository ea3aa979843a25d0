//! Retry schedules as data: the delays between attempts, jitter, and `Retry-After`.
//!
//! A [`RetrySchedule`] is the list of delays before each retry (the first attempt is not
//! delayed). Delays are milliseconds; the command-line form is a comma-separated list of
//! seconds with fractions allowed (`"1,5,30"`, `"0.05, 0.1"`), so that tests need not wait.
//! Randomness for jitter comes from the caller's seeded RNG as a number in `[0, 1)`.

use crate::util::time::parse_http_date;

/// The most entries a schedule may have.
pub const MAX_ENTRIES: usize = 100;

/// The longest single delay, and the cap of every computed delay: one day, in milliseconds.
pub const MAX_DELAY_MS: u64 = 86_400_000;

/// Why a retry schedule was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The schedule has no entries.
    #[error("the retry schedule is empty")]
    Empty,
    /// The schedule has more than [`MAX_ENTRIES`] entries.
    #[error("the retry schedule has {count} entries; at most {max} are allowed", max = MAX_ENTRIES)]
    TooManyEntries {
        /// How many entries were given.
        count: usize,
    },
    /// An entry is not a non-negative decimal number of seconds.
    #[error("retry schedule entry {index} ({value:?}) is not a non-negative number of seconds")]
    InvalidEntry {
        /// The 0-based position of the entry.
        index: usize,
        /// The entry as given, trimmed.
        value: String,
    },
    /// An entry is longer than [`MAX_DELAY_MS`].
    #[error("retry schedule entry {index} is longer than one day (86400 s)")]
    DelayTooLong {
        /// The 0-based position of the entry.
        index: usize,
    },
}

/// The delays before successive retries, in milliseconds; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays_ms: Vec<u64>,
}

impl RetrySchedule {
    /// Parses a comma-separated list of seconds such as `"1,5,30"` or `"0.05, 0.1"`.
    ///
    /// Each entry is a plain decimal number (digits with an optional fractional part; no sign,
    /// exponent, `inf` or `NaN`), blanks around it are ignored, and it is rounded to the
    /// nearest millisecond (halves up). There must be 1 to [`MAX_ENTRIES`] entries of at most
    /// 86400 seconds each.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Empty`] for a blank list, [`ScheduleError::InvalidEntry`] for an empty
    /// or malformed entry, [`ScheduleError::DelayTooLong`] and
    /// [`ScheduleError::TooManyEntries`] for the limits.
    pub fn from_secs_list(s: &str) -> Result<RetrySchedule, ScheduleError> {
        if s.trim().is_empty() {
            return Err(ScheduleError::Empty);
        }
        let count = s.split(',').count();
        if count > MAX_ENTRIES {
            return Err(ScheduleError::TooManyEntries { count });
        }
        let mut delays_ms = Vec::with_capacity(count);
        for (index, entry) in s.split(',').enumerate() {
            let value = entry.trim();
            let ms = parse_secs_as_ms(value).ok_or_else(|| ScheduleError::InvalidEntry {
                index,
                value: value.to_owned(),
            })?;
            delays_ms.push(ms);
        }
        RetrySchedule::from_millis(delays_ms)
    }

    /// A schedule from delays in milliseconds.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Empty`], [`ScheduleError::TooManyEntries`] or
    /// [`ScheduleError::DelayTooLong`] when the list breaks the limits.
    pub fn from_millis(delays_ms: Vec<u64>) -> Result<RetrySchedule, ScheduleError> {
        if delays_ms.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if delays_ms.len() > MAX_ENTRIES {
            return Err(ScheduleError::TooManyEntries {
                count: delays_ms.len(),
            });
        }
        if let Some(index) = delays_ms.iter().position(|&d| d > MAX_DELAY_MS) {
            return Err(ScheduleError::DelayTooLong { index });
        }
        Ok(RetrySchedule { delays_ms })
    }

    /// The number of entries, which is the number of retries the schedule allows when it is
    /// used as a retry budget.
    pub fn len(&self) -> usize {
        self.delays_ms.len()
    }

    /// Always `false`: a schedule has at least one entry. Present for API symmetry with
    /// [`RetrySchedule::len`].
    pub fn is_empty(&self) -> bool {
        self.delays_ms.is_empty()
    }

    /// The delays in milliseconds, in order.
    pub fn delays_ms(&self) -> &[u64] {
        &self.delays_ms
    }

    /// The delay before retry number `retry_index` (0 is the first retry, after the first
    /// attempt failed). Past the end of the schedule its last delay repeats.
    pub fn delay_for_retry(&self, retry_index: usize) -> u64 {
        self.delays_ms
            .get(retry_index)
            .or_else(|| self.delays_ms.last())
            .copied()
            .unwrap_or(0)
    }
}

/// Parses `digits[.digits]` (or `.digits`) seconds into milliseconds, rounding halves up.
/// Values too large for the arithmetic come back as `u64::MAX`, which the caller's range
/// check refuses.
fn parse_secs_as_ms(value: &str) -> Option<u64> {
    let (whole, fraction) = match value.split_once('.') {
        Some((w, f)) => (w, f),
        None => (value, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut seconds: u64 = 0;
    for b in whole.bytes() {
        seconds = seconds
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'));
    }
    let frac = fraction.as_bytes();
    let digit = |i: usize| frac.get(i).map_or(0, |b| u64::from(b - b'0'));
    let millis = digit(0) * 100 + digit(1) * 10 + digit(2);
    let round_up = u64::from(digit(3) >= 5);
    Some(
        seconds
            .saturating_mul(1000)
            .saturating_add(millis)
            .saturating_add(round_up),
    )
}

/// The default push retry schedule: 1, 4, 16, 64 and 256 seconds (exponential, factor 4),
/// so 5 retries and 6 attempts in all.
pub fn default_push_schedule() -> RetrySchedule {
    RetrySchedule {
        delays_ms: vec![1_000, 4_000, 16_000, 64_000, 256_000],
    }
}

/// The default webhook retry schedule: 5 seconds, 1 minute, 10 minutes (3 retries, 4
/// attempts in all).
pub fn default_webhook_schedule() -> RetrySchedule {
    RetrySchedule {
        delays_ms: vec![5_000, 60_000, 600_000],
    }
}

/// Spreads a delay by ±10%: multiplies `delay_ms` by `0.9 + 0.2 * unit`, rounds to the
/// nearest millisecond and caps the result at [`MAX_DELAY_MS`].
///
/// `unit` is drawn by the caller from its seeded RNG in `[0, 1)`; values outside are clamped
/// into `[0, 1]`, and a non-finite `unit` counts as `0.5` (no jitter). No input panics or
/// overflows.
pub fn jittered(delay_ms: u64, unit: f64) -> u64 {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 0.9 + 0.2 * unit;
    // Precision lost above 2^53 ms does not matter: such delays end up capped.
    let scaled = (delay_ms as f64 * factor).round();
    if scaled >= MAX_DELAY_MS as f64 {
        MAX_DELAY_MS
    } else {
        // A whole, non-negative number below the cap: the conversion is exact.
        scaled as u64
    }
}

/// Interprets a `Retry-After` value (RFC 9110, section 10.2.3) as a delay in milliseconds
/// from `now_ms`.
///
/// The value is either a whole number of seconds (`"120"`) or an HTTP-date
/// (`"Sun, 06 Nov 1994 08:49:37 GMT"`, or one of the obsolete forms RFC 9110 tells recipients
/// to accept; see [`parse_http_date`]). A date in the past gives 0. Every answer is capped at
/// [`MAX_DELAY_MS`]. Anything else (a negative or fractional number, text that is not a date)
/// is `None`, and the caller falls back to its schedule.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let mut seconds: u64 = 0;
        for b in value.bytes() {
            seconds = seconds
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
        }
        return Some(seconds.saturating_mul(1000).min(MAX_DELAY_MS));
    }
    let at_ms = parse_http_date(value)?;
    let delta = i128::from(at_ms) - i128::from(now_ms);
    let capped = delta.clamp(0, i128::from(MAX_DELAY_MS));
    u64::try_from(capped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<Vec<u64>, ScheduleError> {
        RetrySchedule::from_secs_list(s).map(|r| r.delays_ms().to_vec())
    }

    #[test]
    fn parses_whole_and_fractional_seconds() {
        assert_eq!(secs("1,5,30"), Ok(vec![1_000, 5_000, 30_000]));
        assert_eq!(secs("0.05, 0.1"), Ok(vec![50, 100]));
        assert_eq!(secs(" 0 "), Ok(vec![0]));
        assert_eq!(secs("1.5,.25,2."), Ok(vec![1_500, 250, 2_000]));
        assert_eq!(secs("0.0004,0.0005,0.0015"), Ok(vec![0, 1, 2]));
        assert_eq!(secs("86400"), Ok(vec![MAX_DELAY_MS]));
        assert_eq!(secs("86400.0004"), Ok(vec![MAX_DELAY_MS]));
        assert_eq!(secs("007"), Ok(vec![7_000]));
    }

    #[test]
    fn refuses_bad_lists() {
        assert_eq!(secs(""), Err(ScheduleError::Empty));
        assert_eq!(secs("  "), Err(ScheduleError::Empty));
        for (list, index, value) in [
            ("1,,5", 1, ""),
            ("1,5,", 2, ""),
            ("-1", 0, "-1"),
            ("+1", 0, "+1"),
            ("1e3", 0, "1e3"),
            ("inf", 0, "inf"),
            ("NaN", 0, "NaN"),
            (".", 0, "."),
            ("1.2.3", 0, "1.2.3"),
            ("1 2", 0, "1 2"),
            ("5, abc", 1, "abc"),
            ("١", 0, "١"),
        ] {
            assert_eq!(
                secs(list),
                Err(ScheduleError::InvalidEntry {
                    index,
                    value: value.to_owned()
                }),
                "{list:?}"
            );
        }
        assert_eq!(
            secs("1,86401"),
            Err(ScheduleError::DelayTooLong { index: 1 })
        );
        assert_eq!(
            secs("86400.0005"),
            Err(ScheduleError::DelayTooLong { index: 0 })
        );
        assert_eq!(
            secs("99999999999999999999999999999"),
            Err(ScheduleError::DelayTooLong { index: 0 })
        );
        let hundred = vec!["1"; 100].join(",");
        assert_eq!(secs(&hundred).map(|v| v.len()), Ok(100));
        let too_many = vec!["1"; 101].join(",");
        assert_eq!(
            secs(&too_many),
            Err(ScheduleError::TooManyEntries { count: 101 })
        );
    }

    #[test]
    fn from_millis_checks_limits() {
        assert_eq!(
            RetrySchedule::from_millis(vec![]),
            Err(ScheduleError::Empty)
        );
        assert_eq!(
            RetrySchedule::from_millis(vec![0; 101]),
            Err(ScheduleError::TooManyEntries { count: 101 })
        );
        assert_eq!(
            RetrySchedule::from_millis(vec![1, MAX_DELAY_MS + 1]),
            Err(ScheduleError::DelayTooLong { index: 1 })
        );
        let ok = RetrySchedule::from_millis(vec![0, MAX_DELAY_MS]);
        assert_eq!(ok.map(|s| s.len()), Ok(2));
    }

    #[test]
    fn delay_for_retry_repeats_the_last_delay() {
        let s = default_webhook_schedule();
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert_eq!(s.delay_for_retry(0), 5_000);
        assert_eq!(s.delay_for_retry(1), 60_000);
        assert_eq!(s.delay_for_retry(2), 600_000);
        assert_eq!(s.delay_for_retry(3), 600_000);
        assert_eq!(s.delay_for_retry(usize::MAX), 600_000);
        let one = RetrySchedule::from_secs_list("0.05");
        assert_eq!(one.map(|s| s.delay_for_retry(2)), Ok(50));
    }

    #[test]
    fn default_schedules() {
        assert_eq!(
            default_push_schedule().delays_ms(),
            &[1_000, 4_000, 16_000, 64_000, 256_000]
        );
        assert_eq!(default_push_schedule().len(), 5);
        assert_eq!(
            default_webhook_schedule().delays_ms(),
            &[5_000, 60_000, 600_000]
        );
        // The defaults obey the same limits as parsed schedules.
        for s in [default_push_schedule(), default_webhook_schedule()] {
            assert_eq!(RetrySchedule::from_millis(s.delays_ms().to_vec()), Ok(s));
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(jittered(1_000, 0.0), 900);
        assert_eq!(jittered(1_000, 0.5), 1_000);
        assert_eq!(jittered(1_000, 0.999_999), 1_100);
        assert_eq!(jittered(0, 0.7), 0);
        for i in 0..1000 {
            let unit = f64::from(i) / 1000.0;
            let d = jittered(10_000, unit);
            assert!((9_000..=11_000).contains(&d), "{unit} -> {d}");
        }
    }

    #[test]
    fn jitter_handles_odd_units_and_huge_delays() {
        assert_eq!(jittered(1_000, -3.0), 900);
        assert_eq!(jittered(1_000, 7.0), 1_100);
        assert_eq!(jittered(1_000, f64::NAN), 1_000);
        assert_eq!(jittered(1_000, f64::INFINITY), 1_000);
        assert_eq!(jittered(1_000, f64::NEG_INFINITY), 1_000);
        assert_eq!(jittered(u64::MAX, 0.0), MAX_DELAY_MS);
        assert_eq!(jittered(MAX_DELAY_MS, 0.9), MAX_DELAY_MS);
        assert_eq!(jittered(MAX_DELAY_MS, 0.0), 77_760_000);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", 5), Some(0));
        assert_eq!(parse_retry_after("86401", 0), Some(MAX_DELAY_MS));
        assert_eq!(
            parse_retry_after("99999999999999999999999999", 0),
            Some(MAX_DELAY_MS)
        );
        for bad in ["", " ", "-1", "1.5", "+3", "1e2", "soon", "١"] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_dates() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let at = 784_111_777_000;
        assert_eq!(parse_retry_after(date, at - 30_000), Some(30_000));
        assert_eq!(parse_retry_after(date, at), Some(0));
        assert_eq!(parse_retry_after(date, at + 1), Some(0));
        assert_eq!(parse_retry_after(date, i64::MIN), Some(MAX_DELAY_MS));
        assert_eq!(parse_retry_after(date, i64::MAX), Some(0));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994", 0), None);
    }
}
