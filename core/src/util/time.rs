//! Timestamp formatting and HTTP-date parsing.
//!
//! The engine measures time as `i64` Unix milliseconds handed in by the host; this module only
//! converts between that number and text. It never reads a clock.

use time::OffsetDateTime;

/// The earliest instant [`rfc3339_millis`] writes as itself: `0000-01-01T00:00:00.000Z`.
pub const MIN_RFC3339_MS: i64 = -62_167_219_200_000;

/// The latest instant [`rfc3339_millis`] writes as itself: `9999-12-31T23:59:59.999Z`.
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp with millisecond precision, e.g.
/// `2026-11-28T23:37:30.123Z`: always four-digit years, always three fractional digits, always
/// `Z`.
///
/// RFC 3339 has room for the years 0000 to 9999 only, so an input outside
/// [`MIN_RFC3339_MS`]..=[`MAX_RFC3339_MS`] is clamped to the nearest end of that range
/// (`0000-01-01T00:00:00.000Z` or `9999-12-31T23:59:59.999Z`). No input panics.
pub fn rfc3339_millis(now_ms: i64) -> String {
    let clamped = now_ms.clamp(MIN_RFC3339_MS, MAX_RFC3339_MS);
    let nanos = i128::from(clamped) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        // The calendar fields come from `time`; writing them is zero-padding numbers (the year
        // is 0 to 9999 after clamping) into a fixed template. This keeps time's
        // format-description machinery, which only this function used for output, out of the
        // wasm module, and `format!`'s padding, which cost more than the calendar arithmetic.
        Ok(at) => {
            let mut text = *b"0000-00-00T00:00:00.000Z";
            let mut put = |at: usize, width: usize, n: u32| {
                let mut n = n;
                for i in (at..at + width).rev() {
                    if let Some(d) = text.get_mut(i) {
                        *d = b'0' + (n % 10) as u8;
                    }
                    n /= 10;
                }
            };
            put(0, 4, at.year().unsigned_abs());
            put(5, 2, u32::from(u8::from(at.month())));
            put(8, 2, u32::from(at.day()));
            put(11, 2, u32::from(at.hour()));
            put(14, 2, u32::from(at.minute()));
            put(17, 2, u32::from(at.second()));
            put(20, 3, u32::from(at.millisecond()));
            // Digits and the ASCII of the template.
            String::from_utf8_lossy(&text).into_owned()
        }
        // Unreachable after clamping; kept so that no input can panic.
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses the timestamps [`rfc3339_millis`] writes (`2026-11-28T23:37:30.123Z`, four-digit
/// year, three fractional digits, `Z`) back into Unix milliseconds; anything else is `None`.
pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    // Exactly that shape (and no leap second, which `parse_rfc3339` reads as :59.999); the
    // date and time are read by `parse_rfc3339`, one parser for both in the wasm module.
    let b = s.as_bytes();
    if b.len() != 24 || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' || &b[17..19] == b"60" {
        return None;
    }
    parse_rfc3339(s).map(|(ms, _)| ms)
}

/// Parses any RFC 3339 timestamp (`2026-11-28T23:37:30Z`, `2026-11-28t23:37:30.5+02:00`,
/// any number of fractional digits, `Z` or a `±HH:MM` offset) into Unix milliseconds and
/// whether digits below the millisecond were non-zero (the exact instant lies after the
/// millisecond answered). Anything else, or a calendar date or time that does not exist, is
/// `None`.
pub fn parse_rfc3339(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        let part = b.get(from..to)?;
        part.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut i = 19;
    let (mut ms, mut rest) = (0u32, false);
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            let d = u32::from(b[i] - b'0');
            match i - start {
                0..=2 => ms = ms * 10 + d,
                _ => rest |= d != 0,
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            ms *= 10;
        }
    }
    let offset_min: i64 = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(i + 1, i + 3)?, digits(i + 4, i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let v = i64::from(h * 60 + m);
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let month = time::Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(digits(0, 4)?).ok()?,
        month,
        u8::try_from(digits(8, 10)?).ok()?,
    )
    .ok()?;
    // A leap second (`:60`) is read as the last millisecond of its minute.
    let sec = digits(17, 19)?;
    let at = time::Time::from_hms_milli(
        u8::try_from(digits(11, 13)?).ok()?,
        u8::try_from(digits(14, 16)?).ok()?,
        u8::try_from(sec.min(59)).ok()?,
        u16::try_from(if sec == 60 { 999 } else { ms }).ok()?,
    )
    .ok()?;
    if sec > 60 {
        return None;
    }
    let local = time::PrimitiveDateTime::new(date, at)
        .assume_utc()
        .unix_timestamp_nanos()
        / 1_000_000;
    Some((i64::try_from(local).ok()? - offset_min * 60_000, rest))
}

/// Parses an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix milliseconds, as found in
/// `Retry-After`.
///
/// The parsing is the `httpdate` crate's: the IMF-fixdate form and the two obsolete forms that
/// RFC 9110 (section 5.6.7) tells recipients to accept, RFC 850 (`Sunday, 06-Nov-94 08:49:37
/// GMT`) and asctime (`Sun Nov  6 08:49:37 1994`), with the day name checked against the date.
/// Surrounding whitespace is ignored. Anything else, and dates before 1970, are `None`.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(s.trim()).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let base = parse_rfc3339_millis("2026-11-28T23:37:30.000Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-28T23:37:30Z"), Some((base, false)));
        assert_eq!(parse_rfc3339("2026-11-28t23:37:30z"), Some((base, false)));
        assert_eq!(
            parse_rfc3339("2026-11-29T01:37:30.5+02:00"),
            Some((base + 500, false))
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T22:37:30.1234-01:00"),
            Some((base + 123, true))
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T23:37:30.1230000Z"),
            Some((base + 123, false))
        );
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28T23:37:30",
            "2026-11-28T23:37:30.Z",
            "2026-02-30T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T23:37:30+2:00",
            "2026-11-28T23:37:30+24:00",
            "2026-11-28 23:37:30Z",
            "yesterday at noon",
            "2026-11-28T23:37:61Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
    use super::*;
    use time::macros::format_description;

    #[test]
    fn formats_with_three_fractional_digits() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(rfc3339_millis(1_000), "1970-01-01T00:00:01.000Z");
        assert_eq!(
            rfc3339_millis(1_795_909_050_123),
            "2026-11-28T23:37:30.123Z"
        );
        assert_eq!(
            rfc3339_millis(1_795_909_050_100),
            "2026-11-28T23:37:30.100Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn formats_instants_before_the_epoch() {
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-86_400_000), "1969-12-31T00:00:00.000Z");
    }

    /// The same text as time's own formatter with the RFC 3339 millisecond description, which
    /// this function used before: on the ends of the range, around the epoch and leap days,
    /// and on a spread of instants across the whole range.
    #[test]
    fn same_text_as_the_format_description() {
        let description = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let by_time = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap()
                .format(description)
                .unwrap()
        };
        let mut cases = vec![
            MIN_RFC3339_MS,
            MIN_RFC3339_MS + 1,
            MAX_RFC3339_MS,
            MAX_RFC3339_MS - 1,
            -1,
            0,
            1,
            951_782_399_999,
            951_782_400_000,
            1_795_909_050_123,
        ];
        // A deterministic spread: 1,000,003 ms steps would take too long over 10,000 years, so
        // step by a prime number of milliseconds a little over 10 days.
        let mut ms = MIN_RFC3339_MS;
        while ms <= MAX_RFC3339_MS {
            cases.push(ms);
            ms += 864_000_007;
        }
        for ms in cases {
            assert_eq!(rfc3339_millis(ms), by_time(ms), "{ms}");
        }
    }

    #[test]
    fn clamps_out_of_range_input() {
        assert_eq!(rfc3339_millis(MIN_RFC3339_MS), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(MAX_RFC3339_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_millis(MIN_RFC3339_MS - 1),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(MAX_RFC3339_MS + 1),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_millis(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn output_parses_back_as_rfc3339() {
        use time::format_description::well_known::Rfc3339;
        for ms in [
            0,
            1,
            -1,
            1_795_909_050_123,
            MAX_RFC3339_MS,
            4_102_444_800_000,
        ] {
            let text = rfc3339_millis(ms);
            let parsed = OffsetDateTime::parse(&text, &Rfc3339).map(|t| t.unix_timestamp_nanos());
            assert_eq!(parsed, Ok(i128::from(ms) * 1_000_000), "{text}");
        }
    }

    #[test]
    fn parses_imf_fixdate() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("  Thu, 01 Jan 1970 00:00:00 GMT "), Some(0));
        assert_eq!(
            parse_http_date("Sat, 28 Nov 2026 23:37:30 GMT"),
            Some(1_795_909_050_000)
        );
    }

    #[test]
    fn parses_the_obsolete_forms_recipients_must_accept() {
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777_000)
        );
    }

    #[test]
    fn rejects_other_date_forms_and_garbage() {
        for bad in [
            "",
            "GMT",
            "120",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Thu, 01 Jan 1970 00:00:00",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
            "sun, 06 nov 1994 08:49:37 gmt",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_millis_parses_back() {
        for ms in [
            0,
            1_790_000_000_123,
            -1,
            MIN_RFC3339_MS,
            MAX_RFC3339_MS,
            951_782_400_000,
        ] {
            assert_eq!(parse_rfc3339_millis(&rfc3339_millis(ms)), Some(ms));
        }
        for bad in [
            "",
            "2026-11-28T23:37:30Z",
            "2026-13-28T23:37:30.123Z",
            "2026-11-28 23:37:30.123Z",
            "+026-11-28T23:37:30.123Z",
            "2026-11-28t23:37:30.123Z",
            "2026-11-28T23:37:30.123z",
            "2026-11-28T23:37:60.123Z",
            "2026-11-28T24:00:00.000Z",
            "2026-02-29T00:00:00.000Z",
            "2026-11-28T23:37:30.1a3Z",
            "2026-11-28T23:37:30.12345",
            "2026-11-28T23:37:30+00:00",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:00:00.007Z"),
            Some(1_709_208_000_007)
        );
    }
}
