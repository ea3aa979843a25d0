//! Exact decimal quantities and checked money arithmetic: an invoice line's quantity is read
//! from the text of its JSON number, and every sum or product is checked, so that an overflow
//! is reported instead of wrapping or panicking.

/// Maximum number of decimal places of an invoice line quantity (after removing trailing zeros).
pub const MAX_QUANTITY_SCALE: u32 = 6;

/// An exact decimal `mantissa x 10^-scale`, normalised (no trailing zeros in the mantissa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decimal {
    pub(super) mantissa: i128,
    pub(super) scale: u32,
}

/// Why a number's text is not a usable quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecimalError {
    /// Not the text of a JSON number.
    Syntax,
    /// More than [`MAX_QUANTITY_SCALE`] decimal places.
    TooPrecise,
    /// Too large to compute with.
    TooLarge,
}

/// Parse the decimal text of a JSON number (`-12.5`, `1e-7`, `3.0E+2`) exactly.
pub(super) fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (number, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match number.find('.') {
        Some(i) => (&number[..i], &number[i + 1..]),
        None => (number, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if int_part.is_empty() || !digits_ok(int_part) || !digits_ok(frac_part) {
        return Err(DecimalError::Syntax);
    }
    if number.contains('.') && frac_part.is_empty() {
        return Err(DecimalError::Syntax);
    }
    // The exponent, saturating: absurd exponents end in TooLarge/TooPrecise below.
    let mut exp: i64 = 0;
    if let Some(e) = exponent {
        let (sign, e_digits) = match e.as_bytes().first() {
            Some(b'-') => (-1, &e[1..]),
            Some(b'+') => (1, &e[1..]),
            _ => (1, e),
        };
        if e_digits.is_empty() || !digits_ok(e_digits) {
            return Err(DecimalError::Syntax);
        }
        for c in e_digits.bytes() {
            exp = exp.saturating_mul(10).saturating_add(i64::from(c - b'0'));
        }
        exp = exp.saturating_mul(sign);
    }
    // All significant digits, without leading zeros; trailing zeros move into the exponent.
    let all = || int_part.bytes().chain(frac_part.bytes());
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| DecimalError::TooLarge)?;
    let Some(first) = all().position(|c| c != b'0') else {
        return Ok(Decimal {
            mantissa: 0,
            scale: 0,
        });
    };
    // There is a nonzero digit, so the zeros after the last one are fewer than all digits.
    let trailing = all().rev().take_while(|c| *c == b'0').count();
    let kept = all()
        .skip(first)
        .take(int_part.len() + frac_part.len() - first - trailing);
    let trailing = i64::try_from(trailing).map_err(|_| DecimalError::TooLarge)?;
    // value = kept x 10^power
    let power = exp.saturating_sub(frac_len).saturating_add(trailing);
    if power < -i64::from(MAX_QUANTITY_SCALE) {
        return Err(DecimalError::TooPrecise);
    }
    let mut mantissa: i128 = 0;
    for c in kept {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or(DecimalError::TooLarge)?;
    }
    let scale = if power >= 0 {
        let shift = u32::try_from(power).map_err(|_| DecimalError::TooLarge)?;
        let factor = 10i128.checked_pow(shift).ok_or(DecimalError::TooLarge)?;
        mantissa = mantissa.checked_mul(factor).ok_or(DecimalError::TooLarge)?;
        0
    } else {
        u32::try_from(-power).map_err(|_| DecimalError::TooPrecise)?
    };
    if negative {
        mantissa = -mantissa;
    }
    Ok(Decimal { mantissa, scale })
}

/// `n / d` rounded half to even (`d > 0`).
fn div_round_half_even(n: i128, d: i128) -> Option<i128> {
    if d <= 0 {
        return None;
    }
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = r.checked_mul(2)?;
    if twice > d || (twice == d && q % 2 != 0) {
        q.checked_add(1)
    } else {
        Some(q)
    }
}

/// `quantity x unit_amount` rounded half to even to the minor unit, plus `tax`; `None` when the
/// result does not fit a signed 64-bit integer.
pub(super) fn line_amount(quantity: Decimal, unit_amount: i64, tax: i64) -> Option<i64> {
    let product = quantity.mantissa.checked_mul(i128::from(unit_amount))?;
    let divisor = 10i128.checked_pow(quantity.scale)?;
    let rounded = div_round_half_even(product, divisor)?;
    let amount = rounded.checked_add(i128::from(tax))?;
    i64::try_from(amount).ok()
}

/// The checked sum of amounts.
pub(super) fn checked_sum(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts.into_iter().try_fold(0i64, i64::checked_add)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn decimal_parsing_is_exact() {
        let d = |s: &str| parse_decimal(s);
        let ok = |m: i128, s: u32| {
            Ok(Decimal {
                mantissa: m,
                scale: s,
            })
        };
        assert_eq!(d("1.15"), ok(115, 2));
        assert_eq!(d("1.500000"), ok(15, 1));
        assert_eq!(d("100"), ok(100, 0));
        assert_eq!(d("1e3"), ok(1000, 0));
        assert_eq!(d("1.5E+2"), ok(150, 0));
        assert_eq!(d("25e-1"), ok(25, 1));
        assert_eq!(d("0.000001"), ok(1, 6));
        assert_eq!(d("1e-6"), ok(1, 6));
        assert_eq!(d("-0.5"), ok(-5, 1));
        assert_eq!(d("0.0"), ok(0, 0));
        assert_eq!(d("0e-99999999999999999999"), ok(0, 0));
        assert_eq!(d("1e-7"), Err(DecimalError::TooPrecise));
        assert_eq!(d("0.1234567"), Err(DecimalError::TooPrecise));
        assert_eq!(d("1.2345670"), ok(123_4567, 6));
        assert_eq!(d("1e39"), Err(DecimalError::TooLarge));
        assert_eq!(d("1e99999999999999999999"), Err(DecimalError::TooLarge));
        assert_eq!(d("1.7976931348623157e308"), Err(DecimalError::TooLarge));
        for bad in [
            "", "-", "1.", ".5", "1e", "1e+", "abc", "1.2.3", "--1", "1e5x",
        ] {
            assert_eq!(d(bad), Err(DecimalError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn serde_json_number_text_is_what_the_parser_expects() {
        // The quantity is parsed from the Number's Display text: check its shapes.
        for (src, mantissa, scale) in [
            ("1.15", 115, 2),
            ("0.5", 5, 1),
            ("2.0", 2, 0),
            ("100000.0", 100_000, 0),
            ("1e-6", 1, 6),
            ("1.5e3", 1500, 0),
            ("3", 3, 0),
        ] {
            let v: Value = serde_json::from_str(src).unwrap();
            let Value::Number(n) = v else { panic!() };
            assert_eq!(
                parse_decimal(&n.to_string()),
                Ok(Decimal { mantissa, scale }),
                "{src} displays as {n}"
            );
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(div_round_half_even(25, 10), Some(2));
        assert_eq!(div_round_half_even(35, 10), Some(4));
        assert_eq!(div_round_half_even(75, 10), Some(8));
        assert_eq!(div_round_half_even(26, 10), Some(3));
        assert_eq!(div_round_half_even(24, 10), Some(2));
        assert_eq!(div_round_half_even(-25, 10), Some(-2));
        assert_eq!(div_round_half_even(-35, 10), Some(-4));
        assert_eq!(div_round_half_even(1, 0), None);
    }
}
