//! Parsing of `--timeout` values: `500ms`, `10s`, `2m`, `1h`, `1m30s`, plain seconds (`5`,
//! `0.5`), and `0` (poll once).

use std::time::Duration;

/// The units a duration may use, longest spelling first so that `ms` is not read as `m`.
const UNITS: &[(&str, f64)] = &[("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0)];

/// What the error messages suggest.
const HINT: &str = "use a number with ms, s, m or h (500ms, 10s, 2m, 1h, 1m30s) or plain seconds";

/// Parses a duration as the command line spells it (clap value parser).
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err(format!("empty duration; {HINT}"));
    }
    if s.starts_with('-') {
        return Err(format!(
            "a timeout cannot be negative ({s}): leave -t out to wait as long as it takes, \
             or give 0 to try once"
        ));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds(number(s)?, s);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}; {HINT}"));
        }
        let value = number(&rest[..digits])?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let Some((_, factor)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("missing unit after {value}; {HINT}")
            } else {
                format!("unknown unit {unit:?}; {HINT}")
            });
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    seconds(total, s)
}

fn number(s: &str) -> Result<f64, String> {
    if s.matches('.').count() > 1 || s == "." {
        return Err(format!("{s:?} is not a number; {HINT}"));
    }
    s.parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number; {HINT}"))
}

fn seconds(secs: f64, input: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{input:?} is out of range"))
}

/// A short human rendering: `850ms`, `4.2s`, `2m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = d.as_secs() / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            "", "x", "10x", "s", "-1", "1..2", "5 s", "ms10", "1e3", "10sec", ".",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse("10x").unwrap_err().contains("\"x\""));
        assert!(parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn human_rendering() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
    }
}
