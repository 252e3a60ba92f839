//! Kubernetes resource quantities ("100m", "1.5", "128Mi", "1e9", "500M") as integers.
//!
//! A quantity is `<sign><digits>[.<digits>]<suffix>` where the suffix is a binary SI
//! suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal SI suffix (n, u, m, "", k, M, G, T, P, E) or
//! a decimal exponent (`e3`, `E-2`). The value is kept exact (mantissa × 10^e × 2^b in
//! 128-bit integers) and rounded *up* to the unit asked for, as Kubernetes does when it
//! turns a request into milli-units: "0.1m" CPU is 1 millicore, never 0.

/// An exactly parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

fn parse_exact(s: &str) -> Option<Exact> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let mut mantissa: i128 = 0;
    let mut exp10: i32 = 0;
    let mut after_point = false;
    for c in number.chars() {
        if c == '.' {
            after_point = true;
            continue;
        }
        // More than 30 significant digits cannot matter for requests; refuse rather than overflow.
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c as u8 - b'0'))?;
        if after_point {
            exp10 -= 1;
        }
    }
    let (extra10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().ok()?;
            if !(-40..=40).contains(&e) {
                return None;
            }
            (e, 0)
        }
        _ => return None,
    };
    if negative {
        mantissa = -mantissa;
    }
    Some(Exact {
        mantissa,
        exp10: exp10 + extra10,
        exp2,
    })
}

/// `q × 10^scale`, rounded up to an integer, saturating at `i64::MAX`; `None` when negative
/// or malformed.
fn scaled_ceil(q: &str, scale: i32) -> Option<i64> {
    let e = parse_exact(q)?;
    if e.mantissa < 0 {
        return None;
    }
    let mut value = e
        .mantissa
        .checked_shl(e.exp2)
        .filter(|v| v >> e.exp2 == e.mantissa)
        .unwrap_or(i128::MAX);
    let exp = e.exp10 + scale;
    if exp >= 0 {
        for _ in 0..exp {
            value = value.saturating_mul(10);
        }
    } else {
        let divisor = (0..-exp).try_fold(1i128, |d, _| d.checked_mul(10));
        value = match divisor {
            Some(d) => (value + d - 1) / d,
            // Dividing by more than 10^38 leaves at most 1 of anything positive.
            None => i128::from(value > 0),
        };
    }
    Some(i64::try_from(value).unwrap_or(i64::MAX))
}

/// A CPU quantity in millicores ("100m" → 100, "1.5" → 1500), rounded up.
pub fn parse_cpu_millis(q: &str) -> Option<i64> {
    scaled_ceil(q, 3)
}

/// A memory (or any plain count) quantity in bytes ("1Gi" → 1073741824), rounded up.
pub fn parse_memory_bytes(q: &str) -> Option<i64> {
    scaled_ceil(q, 0)
}

/// A plain count such as `pods: "110"`, rounded up.
pub fn parse_count(q: &str) -> Option<i64> {
    scaled_ceil(q, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("100m", Some(100)),
            ("2", Some(2000)),
            ("1.5", Some(1500)),
            ("0.1", Some(100)),
            ("250m", Some(250)),
            ("0.5m", Some(1)),
            ("1e3", Some(1_000_000)),
            ("1e3m", None),
            ("500000u", Some(500)),
            ("1500000000n", Some(1500)),
            ("1k", Some(1_000_000)),
            ("+3", Some(3000)),
            ("0", Some(0)),
            (" 4 ", Some(4000)),
            ("-1", None),
            ("", None),
            ("m", None),
            ("1.2.3", None),
            ("12x", None),
            ("1Qi", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_cpu_millis(input), *want, "cpu {input:?}");
        }
    }

    #[test]
    fn memory_quantities_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("128Mi", Some(128 << 20)),
            ("1Gi", Some(1 << 30)),
            ("1e9", Some(1_000_000_000)),
            ("1E9", Some(1_000_000_000)),
            ("500M", Some(500_000_000)),
            ("1.5Gi", Some(3 << 29)),
            ("64Ki", Some(65536)),
            ("123", Some(123)),
            ("1k", Some(1000)),
            ("0.5", Some(1)),
            ("100m", Some(1)),
            ("2Ti", Some(2 << 40)),
            ("8Ei", Some(i64::MAX)),
            ("1e100", None),
            ("Gi", None),
            ("-5Mi", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_memory_bytes(input), *want, "memory {input:?}");
        }
    }

    #[test]
    fn counts_round_up() {
        assert_eq!(parse_count("110"), Some(110));
        assert_eq!(parse_count("29"), Some(29));
    }
}
