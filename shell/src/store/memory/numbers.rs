//! Numbers as Redis 7.0 reads and writes them: `%.17g` for scores and for Lua
//! numbers passed to `redis.call`, `strtod` for scores, `string2ll` for
//! integers.

/// C's `printf("%.17g", x)` (glibc), as Redis 7.0 formats a double.
pub fn fmt_g17(x: f64) -> String {
    fmt_g(x, 17)
}

/// C's `%.<precision>g`.
pub fn fmt_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_owned()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A score in a reply (`addReplyDouble`, RESP2).
pub fn fmt_score(x: f64) -> String {
    fmt_g17(x)
}

/// Redis's `string2ll`: an optional '-', then digits without a leading zero
/// (or exactly "0"), fitting an i64. No spaces, no '+'.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// The longest prefix of `s` that C's `strtod` would read (after skipping
/// leading whitespace), and its value; `None` when nothing is read.
fn strtod_prefix(s: &[u8]) -> Option<(f64, usize, bool)> {
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(s.len());
    let mut i = start;
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower: Vec<u8> = rest.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"infinity") {
        return Some((sign * f64::INFINITY, i + 8, false));
    }
    if lower.starts_with(b"inf") {
        return Some((sign * f64::INFINITY, i + 3, false));
    }
    if lower.starts_with(b"nan") {
        return Some((f64::NAN, i + 3, false));
    }
    if lower.starts_with(b"0x") {
        if let Some((v, n)) = parse_hex_float(&rest[2..]) {
            return Some((sign * v, i + 2 + n, false));
        }
        // "0x" without hex digits reads as "0".
        return Some((sign * 0.0, i + 1, false));
    }
    // Decimal: digits [. digits] [e [sign] digits]
    let mut j = i;
    let mut mantissa_digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        j += 1;
        mantissa_digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        let mut k = j + 1;
        let mut frac = 0;
        while k < s.len() && s[k].is_ascii_digit() {
            nonzero |= s[k] != b'0';
            k += 1;
            frac += 1;
        }
        if mantissa_digits + frac > 0 {
            j = k;
            mantissa_digits += frac;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if j < s.len() && (s[j] == b'e' || s[j] == b'E') {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        let digits_start = k;
        while k < s.len() && s[k].is_ascii_digit() {
            k += 1;
        }
        if k > digits_start {
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).ok()?;
    let v: f64 = text.parse().ok()?;
    Some((v, j, nonzero))
}

/// Hex digits with an optional fraction and binary exponent (after "0x").
fn parse_hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let mut v = 0.0f64;
    let mut any = false;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        v = v * 16.0 + f64::from((s[i] as char).to_digit(16)?);
        i += 1;
        any = true;
    }
    if i < s.len() && s[i] == b'.' {
        let mut k = i + 1;
        let mut scale = 1.0 / 16.0;
        let mut frac_any = false;
        while k < s.len() && s[k].is_ascii_hexdigit() {
            v += f64::from((s[k] as char).to_digit(16)?) * scale;
            scale /= 16.0;
            k += 1;
            frac_any = true;
        }
        if any || frac_any {
            i = k;
            any = true;
        }
    }
    if !any {
        return None;
    }
    if i < s.len() && (s[i] == b'p' || s[i] == b'P') {
        let mut k = i + 1;
        let neg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let ds = k;
        let mut e: i32 = 0;
        while k < s.len() && s[k].is_ascii_digit() {
            e = e.saturating_mul(10).saturating_add(i32::from(s[k] - b'0'));
            k += 1;
        }
        if k > ds {
            v *= 2f64.powi(if neg { -e } else { e });
            i = k;
        }
    }
    Some((v, i))
}

/// A float argument as Redis 7.0's `getDoubleFromObject` reads it (ZADD
/// scores): the whole string, no leading space, no NaN, no overflow to
/// infinity and no underflow to zero.
pub fn parse_f64_strict(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s[0] == 0x0b {
        return None;
    }
    let (v, used, nonzero) = strtod_prefix(s)?;
    if used != s.len() || v.is_nan() {
        return None;
    }
    let literal_inf = {
        let l = s.to_ascii_lowercase();
        l.ends_with(b"inf") || l.ends_with(b"infinity")
    };
    if v.is_infinite() && !literal_inf {
        return None; // ERANGE overflow
    }
    if v == 0.0 && nonzero {
        return None; // ERANGE underflow
    }
    Some(v)
}

/// A range bound's number as `zslParseRange` reads it: `strtod` must consume
/// the rest of the string (an empty string reads as 0), NaN is refused.
pub fn parse_f64_loose(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let (v, used, _) = strtod_prefix(s)?;
    if used != s.len() || v.is_nan() {
        return None;
    }
    Some(v)
}

/// A Lua number returned to the caller: C's `(long long)` cast as x86-64 does
/// it (truncation; NaN and out-of-range values give i64::MIN).
pub fn lua_number_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_matches_redis_7_0() {
        // Checked against redis-server 7.0.15 (ZADD then ZRANGE … WITHSCORES).
        let cases: &[(f64, &str)] = &[
            (4398046511104000.0, "4398046511104000"),
            (4398046511104000.0 + 1795329852577.0, "4399841840956577"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e20, "1e+20"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (3.0e-5, "3.0000000000000001e-05"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2.5e15, "2500000000000000"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (12345678.9, "12345678.9"),
            (5e-324, "4.9406564584124654e-324"),
            (1e-300, "1e-300"),
            (123.456, "123.456"),
            (-1.5, "-1.5"),
            (-4398046511104000.0, "-4398046511104000"),
            (1e15, "1000000000000000"),
            (1e21, "1e+21"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (7.0, "7"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
        ];
        for (x, want) in cases {
            assert_eq!(fmt_g17(*x), *want, "{x:e}");
        }
        assert_eq!(
            fmt_g(4398046511104000.0 + 1795329852577.0, 14),
            "4.3998418409566e+15"
        );
        assert_eq!(fmt_g(100000000000000.0, 14), "1e+14");
        assert_eq!(fmt_g(0.1, 14), "0.1");
    }

    #[test]
    fn integers_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b" 1",
            b"1 ",
            b"-0",
            b"-",
            b"9223372036854775808",
            b"1.0",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_like_redis() {
        assert_eq!(parse_f64_strict(b"1.5"), Some(1.5));
        assert_eq!(parse_f64_strict(b"0x10"), Some(16.0));
        assert_eq!(parse_f64_strict(b"+5"), Some(5.0));
        assert_eq!(parse_f64_strict(b".5"), Some(0.5));
        assert_eq!(parse_f64_strict(b"-INF"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64_strict(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_f64_strict(b"5e-324"), Some(5e-324));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e",
            b"abc",
            b"1e400",
            b"1e-400",
            b"(1",
        ] {
            assert_eq!(
                parse_f64_strict(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_f64_loose(b""), Some(0.0));
        assert_eq!(parse_f64_loose(b" 1"), Some(1.0));
        assert_eq!(parse_f64_loose(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_f64_loose(b"(1"), None);
        assert_eq!(parse_f64_loose(b"nan"), None);
        assert_eq!(parse_f64_loose(b" "), None);
    }

    #[test]
    fn lua_numbers_truncate_like_c() {
        assert_eq!(lua_number_to_i64(2.7), 2);
        assert_eq!(lua_number_to_i64(-2.7), -2);
        assert_eq!(lua_number_to_i64(1e30), i64::MIN);
        assert_eq!(lua_number_to_i64(-1e30), i64::MIN);
        assert_eq!(lua_number_to_i64(f64::NAN), i64::MIN);
    }
}
