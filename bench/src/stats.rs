//! Medians, spreads, percentiles and the formatting of numbers in reports.

/// The median and spread of repeated measurements.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// Summarises `values` (at least one).
pub fn summarize(values: &[f64]) -> Summary {
    assert!(!values.is_empty(), "nothing to summarise");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Summary {
        median: percentile_sorted(&v, 50.0),
        min: v[0],
        max: v[v.len() - 1],
        n: v.len(),
    }
}

/// The `p`th percentile of sorted `v`, by linear interpolation between closest ranks.
pub fn percentile_sorted(v: &[f64], p: f64) -> f64 {
    assert!(!v.is_empty());
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// A duration in nanoseconds, with a unit that keeps 3 significant digits.
pub fn ns(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1} ns")
    } else if x < 1e3 {
        format!("{x:.0} ns")
    } else if x < 1e4 {
        format!("{:.2} µs", x / 1e3)
    } else if x < 1e6 {
        format!("{:.1} µs", x / 1e3)
    } else if x < 1e7 {
        format!("{:.2} ms", x / 1e6)
    } else {
        format!("{:.1} ms", x / 1e6)
    }
}

/// A rate per second.
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k/s", x / 1e3)
    } else {
        format!("{x:.0} /s")
    }
}

/// A byte count.
pub fn bytes(x: f64) -> String {
    if x >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", x / 1024.0 / 1024.0)
    } else if x >= 10.0 * 1024.0 {
        format!("{:.1} KiB", x / 1024.0)
    } else {
        format!("{x:.0} B")
    }
}

/// A ratio like `2.31×`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "–".to_owned()
    } else if x >= 100.0 {
        format!("{x:.0}×")
    } else if x >= 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

/// `median (min–max)` of a duration summary.
pub fn ns_spread(s: &Summary) -> (String, String) {
    (ns(s.median), format!("{}–{}", ns(s.min), ns(s.max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile_sorted(&v, 50.0), 3.0);
        assert_eq!(percentile_sorted(&v, 0.0), 1.0);
        assert_eq!(percentile_sorted(&v, 100.0), 5.0);
        assert_eq!(percentile_sorted(&v, 25.0), 2.0);
        let s = summarize(&[3.0, 1.0, 2.0, 4.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }
}
