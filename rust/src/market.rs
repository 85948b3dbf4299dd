//! Daily bars as packed columns: read from the protobuf wire bytes of an `allsuse.v1.BarColumns` message (or of a
//! message holding one) and checked without a per-bar loop in Python.
//!
//! The rules are the ones a snapshot's `Bar` messages meet (python/allsuse/server/convert.py): the six columns of
//! equal length, at most `max_bars` bars, days strictly increasing, prices finite in (0, MAX_PRICE] with
//! high >= low, volumes finite in [0, MAX_VOLUME]. Every refusal names the field, e.g.
//! `market.symbols[0].columns.close[17]: must be a finite number, got nan`.

use crate::error::{CoreError, CoreResult};

/// The largest price a bar may carry (convert.MAX_PRICE).
pub const MAX_PRICE: f64 = 10_000_000.0;
/// The largest volume a bar may carry (convert.MAX_VOLUME).
pub const MAX_VOLUME: f64 = 1e15;
/// Day number of 0001-01-01 (Python's `date.min`) counted from 1970-01-01.
pub const MIN_EPOCH_DAY: i64 = -719_162;
/// Day number of 9999-12-31 (Python's `date.max`) counted from 1970-01-01.
pub const MAX_EPOCH_DAY: i64 = 2_932_896;
/// Python's `date.toordinal()` of 1970-01-01: ordinal = epoch day + this.
pub const ORDINAL_OF_EPOCH: i64 = 719_163;

/// The column names in field-number order (BarColumns fields 2..6; field 1 is `days`).
pub const PRICE_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Checked bars: day numbers since 1970-01-01 and the five value columns, all of one length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarColumns {
    pub days: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl BarColumns {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Whether there are no bars.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    fn column_mut(&mut self, number: u64) -> Option<&mut Vec<f64>> {
        match number {
            2 => Some(&mut self.open),
            3 => Some(&mut self.high),
            4 => Some(&mut self.low),
            5 => Some(&mut self.close),
            6 => Some(&mut self.volume),
            _ => None,
        }
    }

    fn column(&self, index: usize) -> &[f64] {
        match index {
            0 => &self.open,
            1 => &self.high,
            2 => &self.low,
            3 => &self.close,
            _ => &self.volume,
        }
    }
}

/// The civil date (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A day number as ISO text, YYYY-MM-DD.
pub fn iso_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A number the way Python's `format(x, "g")` writes it (6 significant digits), for error messages that read the
/// same as the Python checks'.
pub fn format_g(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = usize::try_from(5 - exp).unwrap_or(0);
    trim_zeros(&format!("{x:.decimals$}")).to_string()
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Reads protobuf wire bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn fixed64(&mut self) -> Option<f64> {
        let raw: [u8; 8] = self.bytes(8)?.try_into().ok()?;
        Some(f64::from_le_bytes(raw))
    }

    fn length_delimited(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.bytes(n)
    }

    /// Skips one field of `wire` type; None on bytes that are not protobuf.
    fn skip(&mut self, wire: u64) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.bytes(8).map(|_| ()),
            2 => self.length_delimited().map(|_| ()),
            5 => self.bytes(4).map(|_| ()),
            _ => None,
        }
    }
}

fn malformed(field: &str) -> CoreError {
    CoreError::invalid(field, "is not a valid BarColumns message")
}

/// Appends the fields of one BarColumns message to `out` (repeated fields of repeated occurrences concatenate,
/// as protobuf merges them); packed and unpacked encodings are both accepted.
fn merge_columns(
    data: &[u8],
    out: &mut BarColumns,
    field: &str,
    max_bars: usize,
) -> CoreResult<()> {
    let mut r = Reader::new(data);
    while !r.done() {
        let key = r.varint().ok_or_else(|| malformed(field))?;
        let (number, wire) = (key >> 3, key & 7);
        match (number, wire) {
            (1, 0) => {
                let v = r.varint().ok_or_else(|| malformed(field))?;
                out.days.push(v as i64);
            }
            (1, 2) => {
                let packed = r.length_delimited().ok_or_else(|| malformed(field))?;
                let mut p = Reader::new(packed);
                while !p.done() {
                    let v = p.varint().ok_or_else(|| malformed(field))?;
                    out.days.push(v as i64);
                }
            }
            (2..=6, 1) => {
                let v = r.fixed64().ok_or_else(|| malformed(field))?;
                if let Some(col) = out.column_mut(number) {
                    col.push(v);
                }
            }
            (2..=6, 2) => {
                let packed = r.length_delimited().ok_or_else(|| malformed(field))?;
                if packed.len() % 8 != 0 {
                    return Err(malformed(field));
                }
                if let Some(col) = out.column_mut(number) {
                    col.reserve(packed.len() / 8);
                    for chunk in packed.chunks_exact(8) {
                        let raw: [u8; 8] = chunk.try_into().map_err(|_| malformed(field))?;
                        col.push(f64::from_le_bytes(raw));
                    }
                }
            }
            _ => r.skip(wire).ok_or_else(|| malformed(field))?,
        }
        // Refuse an oversized message before reading all of it.
        let longest = [
            out.days.len(),
            out.open.len(),
            out.high.len(),
            out.low.len(),
            out.close.len(),
            out.volume.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if longest > max_bars {
            return Err(CoreError::invalid(
                format!("{field}.days"),
                format!("must hold at most {max_bars} bars, got more"),
            ));
        }
    }
    Ok(())
}

/// The BarColumns carried by the message `data` under field number `tag` (0: `data` is itself a BarColumns),
/// checked; `field` names it in errors (e.g. "market.symbols[0].columns"). Also returns whether the message holds
/// any entry of field `bars_tag` (a `repeated Bar`; 0: do not look), so a caller can refuse both forms at once.
pub fn read_columns(
    data: &[u8],
    tag: u64,
    bars_tag: u64,
    field: &str,
    max_bars: usize,
) -> CoreResult<(BarColumns, bool)> {
    let mut out = BarColumns::default();
    let mut has_bars = false;
    if tag == 0 {
        merge_columns(data, &mut out, field, max_bars)?;
    } else {
        let mut r = Reader::new(data);
        while !r.done() {
            let key = r.varint().ok_or_else(|| malformed(field))?;
            let (number, wire) = (key >> 3, key & 7);
            if number == tag && wire == 2 {
                let inner = r.length_delimited().ok_or_else(|| malformed(field))?;
                merge_columns(inner, &mut out, field, max_bars)?;
            } else {
                if bars_tag != 0 && number == bars_tag {
                    has_bars = true;
                }
                r.skip(wire).ok_or_else(|| malformed(field))?;
            }
        }
    }
    check(&out, field, max_bars)?;
    Ok((out, has_bars))
}

/// The rules of a snapshot's bars, on columns.
pub fn check(c: &BarColumns, field: &str, max_bars: usize) -> CoreResult<()> {
    let n = c.days.len();
    if n > max_bars {
        return Err(CoreError::invalid(
            format!("{field}.days"),
            format!("must hold at most {max_bars} bars, got {n}"),
        ));
    }
    for (i, name) in PRICE_COLUMNS.iter().enumerate() {
        let len = c.column(i).len();
        if len != n {
            return Err(CoreError::invalid(
                format!("{field}.{name}"),
                format!("has {len} entries, days has {n}"),
            ));
        }
    }
    for (j, &day) in c.days.iter().enumerate() {
        if !(MIN_EPOCH_DAY..=MAX_EPOCH_DAY).contains(&day) {
            return Err(CoreError::invalid(
                format!("{field}.days[{j}]"),
                format!(
                    "must be a day number in {MIN_EPOCH_DAY}..{MAX_EPOCH_DAY} (0001-01-01..9999-12-31), got {day}"
                ),
            ));
        }
        if j > 0 && day <= c.days[j - 1] {
            return Err(CoreError::invalid(
                format!("{field}.days[{j}]"),
                format!(
                    "{} is not after {} (oldest first)",
                    iso_date(day),
                    iso_date(c.days[j - 1])
                ),
            ));
        }
    }
    for (i, name) in PRICE_COLUMNS.iter().enumerate() {
        let (low, high) = if i == 4 {
            (0.0, MAX_VOLUME)
        } else {
            (0.0, MAX_PRICE)
        };
        let open_low = i != 4;
        for (j, &x) in c.column(i).iter().enumerate() {
            let reason = if !x.is_finite() {
                Some(format!("must be a finite number, got {}", format_g(x)))
            } else if x < low || (open_low && x == low) {
                Some(format!(
                    "must be {} {}, got {}",
                    if open_low { ">" } else { ">=" },
                    format_g(low),
                    format_g(x)
                ))
            } else if x > high {
                Some(format!(
                    "must be <= {}, got {}",
                    format_g(high),
                    format_g(x)
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(CoreError::invalid(format!("{field}.{name}[{j}]"), reason));
            }
        }
    }
    for (j, (h, l)) in c.high.iter().zip(&c.low).enumerate() {
        if h < l {
            return Err(CoreError::invalid(
                format!("{field}.high[{j}]"),
                "is below low",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn encode(c: &BarColumns) -> Vec<u8> {
        let mut out = Vec::new();
        let mut packed = Vec::new();
        for &d in &c.days {
            varint(d as u64, &mut packed);
        }
        varint((1 << 3) | 2, &mut out);
        varint(packed.len() as u64, &mut out);
        out.extend(packed);
        for (i, col) in [&c.open, &c.high, &c.low, &c.close, &c.volume]
            .iter()
            .enumerate()
        {
            varint(((i as u64 + 2) << 3) | 2, &mut out);
            varint(col.len() as u64 * 8, &mut out);
            for x in col.iter() {
                out.extend(x.to_le_bytes());
            }
        }
        out
    }

    fn sample() -> BarColumns {
        BarColumns {
            days: vec![19_724, 19_725, 19_726],
            open: vec![10.0, 11.0, 12.0],
            high: vec![10.5, 11.5, 12.5],
            low: vec![9.5, 10.5, 11.5],
            close: vec![10.2, 11.2, 12.2],
            volume: vec![1e6, 2e6, 3e6],
        }
    }

    #[test]
    fn round_trips_packed_columns() {
        let c = sample();
        let (read, has_bars) = read_columns(&encode(&c), 0, 0, "columns", 10).unwrap_or_default();
        assert_eq!(read, c);
        assert!(!has_bars);
    }

    #[test]
    fn reads_columns_inside_an_outer_message_and_sees_bars() {
        let inner = encode(&sample());
        let mut outer = Vec::new();
        varint((1 << 3) | 2, &mut outer); // symbol
        varint(3, &mut outer);
        outer.extend(b"SPY");
        varint((2 << 3) | 2, &mut outer); // one (empty) Bar
        varint(0, &mut outer);
        varint((7 << 3) | 2, &mut outer);
        varint(inner.len() as u64, &mut outer);
        outer.extend(inner);
        let (read, has_bars) = read_columns(&outer, 7, 2, "m", 10).unwrap_or_default();
        assert_eq!(read, sample());
        assert!(has_bars);
    }

    #[test]
    fn refuses_bad_columns_naming_the_field() {
        let mut c = sample();
        c.close[1] = f64::NAN;
        let err = read_columns(&encode(&c), 0, 0, "cols", 10).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("cols.close[1]: must be a finite number, got nan".into())
        );
        let mut c = sample();
        c.days[2] = c.days[1];
        let err = read_columns(&encode(&c), 0, 0, "cols", 10).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("cols.days[2]: 2024-01-03 is not after 2024-01-03 (oldest first)".into())
        );
        let mut c = sample();
        c.volume.pop();
        let err = read_columns(&encode(&c), 0, 0, "cols", 10).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("cols.volume: has 2 entries, days has 3".into())
        );
        let mut c = sample();
        c.high[0] = 9.0;
        let err = read_columns(&encode(&c), 0, 0, "cols", 10).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("cols.high[0]: is below low".into())
        );
        let mut c = sample();
        c.open[0] = 2e7;
        let err = read_columns(&encode(&c), 0, 0, "cols", 10).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("cols.open[0]: must be <= 1e+07, got 2e+07".into())
        );
        let err = read_columns(&encode(&sample()), 0, 0, "cols", 2).err();
        assert!(err.is_some_and(|e| e.field() == "cols.days"));
        assert!(read_columns(&[0xff], 0, 0, "cols", 2).is_err());
    }

    #[test]
    fn formats_numbers_like_python() {
        for (x, text) in [
            (1e7, "1e+07"),
            (0.0, "0"),
            (-1.0, "-1"),
            (123.456, "123.456"),
            (1e15, "1e+15"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
        ] {
            assert_eq!(format_g(x), text);
        }
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(19_724), "2024-01-02");
        assert_eq!(iso_date(MIN_EPOCH_DAY), "0001-01-01");
        assert_eq!(iso_date(MAX_EPOCH_DAY), "9999-12-31");
    }
}
