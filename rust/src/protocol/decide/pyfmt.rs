//! Numbers written the way the explanation has always written them (Python's format mini-language): a decision's
//! explanation is part of its record, so the core writes `:.2f`, `:.0%`, `:g`, `:,.0f` and `repr` exactly as the
//! Python engine did (Rust's fixed-point formatting rounds the exact binary value half to even, like Python's).

use std::fmt;

/// `{x:.Nf}`, written where it is used (a `Display`: no string of its own inside a larger `format!`; its width and
/// fill flags are not read).
pub fn fixed(x: f64, digits: usize) -> Fixed {
    Fixed { x, digits }
}

/// `{x:.N%}`: x x 100 in fixed point, then `%`.
pub fn pct(x: f64, digits: usize) -> Pct {
    Pct(fixed(x * 100.0, digits))
}

/// `{x:.Nf}` of `fixed`.
#[derive(Debug, Clone, Copy)]
pub struct Fixed {
    x: f64,
    digits: usize,
}

/// `{x:.N%}` of `pct`.
#[derive(Debug, Clone, Copy)]
pub struct Pct(Fixed);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; FIXED_BUF];
        match fixed_exact(self.x, self.digits, &mut buf) {
            Some(text) => f.write_str(text),
            None => {
                let (x, digits) = (self.x, self.digits);
                write!(f, "{x:.digits$}")
            }
        }
    }
}

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)?;
        f.write_str("%")
    }
}

/// Significand digits times 10^17 (< 2^110), shifted left by at most 17: below 10^39; a sign, a point, a zero.
const FIXED_BUF: usize = 48;
const MAX_FIXED_DIGITS: usize = 17;
const MAX_FIXED_SHIFT: i32 = 17;

/// `{x:.Nf}` from the exact binary value in integers: x = m x 2^e (m the 53-bit significand), so x x 10^N is
/// m x 10^N shifted by e, rounded half to even on the bits shifted out, exactly as Python (and Rust's own
/// `{:.N}`, which it equals bit for bit, by a property test) rounds the exact value; no big-number fallback.
/// `None` (the caller writes it with `format!`) for non-finite x, N above 17 or x of 2^70 and above.
fn fixed_exact(x: f64, digits: usize, buf: &mut [u8; FIXED_BUF]) -> Option<&str> {
    if !x.is_finite() || digits > MAX_FIXED_DIGITS {
        return None;
    }
    let bits = x.to_bits();
    let negative = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let scaled = u128::from(m) * u128::from(10u64.pow(digits as u32));
    let q = if e >= 0 {
        if e > MAX_FIXED_SHIFT {
            return None;
        }
        scaled << e
    } else {
        let k = e.unsigned_abs();
        if k >= 128 {
            0 // scaled < 2^110, less than half of 2^k: rounds to zero
        } else {
            let q = scaled >> k;
            let rest = scaled & ((1u128 << k) - 1);
            let half = 1u128 << (k - 1);
            if rest > half || (rest == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    // The digits of q from the right (at least N + 1 of them: a zero before the point), the point N from the right.
    let (high, mut low) = if q >> 64 == 0 {
        (0u64, q as u64)
    } else {
        const TEN19: u128 = 10_000_000_000_000_000_000;
        (u64::try_from(q / TEN19).ok()?, (q % TEN19) as u64)
    };
    let mut end = FIXED_BUF;
    let mut written = 0usize;
    // The low part has exactly 19 digits when there is a high part.
    let low_digits = if high > 0 { 19 } else { 0 };
    loop {
        if written == low_digits && high > 0 {
            low = high;
        }
        if !(low > 0 || written <= digits || written < low_digits) {
            break;
        }
        end -= 1;
        buf[end] = b'0' + (low % 10) as u8;
        low /= 10;
        written += 1;
        if written == digits {
            end -= 1;
            buf[end] = b'.';
        }
    }
    if negative {
        end -= 1;
        buf[end] = b'-';
    }
    std::str::from_utf8(&buf[end..]).ok()
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
    let mut buf = [0u8; FIXED_BUF];
    match fixed_exact(x, digits, &mut buf) {
        Some(text) => text.parse().unwrap_or(x),
        None => fixed(x, digits).to_string().parse().unwrap_or(x),
    }
}

/// `{x:,.0f}`: whole number with thousands separators.
pub fn thousands(x: f64) -> String {
    let text = fixed(x, 0).to_string();
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
        strip_zeros(&fixed(x, digits).to_string()).to_string()
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
    use proptest::prelude::*;

    /// Rust's own `{:.N}` (exact, ties to even), what `fixed` wrote before it had a path of its own.
    fn std_fixed(x: f64, digits: usize) -> String {
        format!("{x:.digits$}")
    }

    proptest! {
        /// `fixed` writes what `{:.N}` writes, for any double (any bit pattern: subnormals, huge, negative zero,
        /// non-finite) and any N up to 20.
        #[test]
        fn fixed_is_std_fixed_for_any_double(bits in any::<u64>(), digits in 0usize..21) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(fixed(x, digits).to_string(), std_fixed(x, digits));
            prop_assert_eq!(pct(x, digits).to_string(), format!("{:.digits$}%", x * 100.0));
        }

        /// `round` is the value `{:.N}` writes read back (what it was before it wrote the digits itself).
        #[test]
        fn round_is_the_written_value_read_back(bits in any::<u64>(), y in -1e9f64..1e9, digits in 0usize..21) {
            for x in [f64::from_bits(bits), y] {
                let before = if x.is_finite() { std_fixed(x, digits).parse().unwrap_or(x) } else { x };
                prop_assert_eq!(round(x, digits).to_bits(), before.to_bits());
            }
        }

        /// The same for the numbers an explanation writes: prices, shares, money, with ties (n + 1/2 of the last
        /// place, exactly representable ones) and their neighbours.
        #[test]
        fn fixed_is_std_fixed_near_ties(n in -10_000_000i64..10_000_000, scale in 0u32..9, digits in 0usize..9) {
            let tie = (n as f64 + 0.5) / 10f64.powi(scale as i32);
            for x in [tie, f64::from_bits(tie.to_bits() + 1), f64::from_bits(tie.to_bits().saturating_sub(1))] {
                prop_assert_eq!(fixed(x, digits).to_string(), std_fixed(x, digits));
            }
        }
    }

    /// Many doubles of every size an explanation writes (an xorshift walk over magnitudes 1e-12 .. 1e19 and signs),
    /// each digit count up to 17: `fixed` is `{:.N}`.
    #[test]
    fn fixed_is_std_fixed_over_many_magnitudes() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for k in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let x = unit * 10f64.powi((k % 32) as i32 - 12) * if k % 3 == 0 { -1.0 } else { 1.0 };
            let digits = (k % 18) as usize;
            assert_eq!(
                fixed(x, digits).to_string(),
                std_fixed(x, digits),
                "{x:e} {digits}"
            );
        }
    }

    #[test]
    fn fixed_edges() {
        for x in [
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -2.5,
            0.125,
            0.375,
            1e-300,
            -1e-300,
            5e-324,
            0.005,
            0.015,
            0.025,
            1.005,
            2f64.powi(52),
            2f64.powi(53) + 2.0,
            2f64.powi(69),
            2f64.powi(70),
            1e21,
            1e22,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            123_456_789.987_654_33,
            9.5,
            99.5,
            999.9999999,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            for digits in 0..=20 {
                assert_eq!(
                    fixed(x, digits).to_string(),
                    std_fixed(x, digits),
                    "{x:e} {digits}"
                );
            }
        }
    }

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
        assert_eq!(pct(0.025, 1).to_string(), "2.5%");
        assert_eq!(pct(0.3, 0).to_string(), "30%");
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
