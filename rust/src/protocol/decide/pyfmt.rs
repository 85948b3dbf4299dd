//! Numbers written the way the explanation has always written them (Python's format mini-language): a decision's
//! explanation is part of its record, so the core writes `:.2f`, `:.0%`, `:g`, `:,.0f` and `repr` exactly as the
//! Python engine did (Rust's fixed-point formatting rounds the exact binary value half to even, like Python's).

/// `{x:.Nf}`.
pub fn fixed(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// `{x:.N%}`: x x 100 in fixed point, then `%`.
pub fn pct(x: f64, digits: usize) -> String {
    format!("{:.digits$}%", x * 100.0)
}

/// `{x:+.Nf}`.
pub fn signed(x: f64, digits: usize) -> String {
    format!("{x:+.digits$}")
}

/// `round(x, N)`: the nearest N-decimal value, ties to even on the exact binary value.
pub fn round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    fixed(x, digits).parse().unwrap_or(x)
}

/// `{x:,.0f}`: whole number with thousands separators.
pub fn thousands(x: f64) -> String {
    let text = fixed(x, 0);
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn exponent_text(e: i32) -> String {
    let sign = if e < 0 { '-' } else { '+' };
    format!("e{sign}{:02}", e.unsigned_abs())
}

fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// `{x:g}`: six significant digits, fixed between 1e-4 and 1e6, trailing zeros removed.
pub fn general(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        let digits = usize::try_from(5 - exp).unwrap_or(0);
        strip_zeros(&fixed(x, digits)).to_string()
    } else {
        format!("{}{}", strip_zeros(mantissa), exponent_text(exp))
    }
}

/// `repr(x)` (and `str(x)`, `f"{x}"`): the shortest text that reads back as x, `.0` on whole numbers.
pub fn repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let text = format!("{x:?}");
    match text.split_once('e') {
        Some((mantissa, exp)) => {
            let exp: i32 = exp.parse().unwrap_or(0);
            format!("{mantissa}{}", exponent_text(exp))
        }
        None => text,
    }
}

/// `str.title()` of a lower-case word: its first letter upper-cased.
pub fn title(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The ISO date (YYYY-MM-DD) of a proleptic Gregorian ordinal (Python's `date.toordinal()`, 1 = 0001-01-01).
pub fn iso_date(ordinal: i64) -> String {
    // Days since 1970-01-01, then the civil date (Howard Hinnant's days-to-civil algorithm).
    let z = ordinal - 719_163 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_numbers_like_python() {
        assert_eq!(general(1.0), "1");
        assert_eq!(general(0.75), "0.75");
        assert_eq!(general(1925.0), "1925");
        assert_eq!(general(2047.5), "2047.5");
        assert_eq!(general(1234567.0), "1.23457e+06");
        assert_eq!(general(0.00001), "1e-05");
        assert_eq!(general(123456.0), "123456");
        assert_eq!(repr(1.0), "1.0");
        assert_eq!(repr(0.1), "0.1");
        assert_eq!(repr(1e-5), "1e-05");
        assert_eq!(repr(1e16), "1e+16");
        assert_eq!(pct(0.025, 1), "2.5%");
        assert_eq!(pct(0.3, 0), "30%");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(-999.0), "-999");
        assert_eq!(thousands(100.0), "100");
        assert_eq!(signed(0.5, 2), "+0.50");
        assert_eq!(round(0.125, 2), 0.12);
        assert_eq!(round(0.375, 2), 0.38);
        assert_eq!(title("green"), "Green");
        assert_eq!(iso_date(1), "0001-01-01");
        assert_eq!(iso_date(735_235), "2014-01-02");
        assert_eq!(iso_date(719_163), "1970-01-01");
    }
}
