//! The time format of the `serde` feature (and of the `namedmutex` command): instants as
//! RFC 3339 strings in UTC with milliseconds, `2024-05-01T12:00:03.250Z`. [`crate::MutexInfo`]
//! and [`crate::OwnerInfo`] write their times this way (and the last abandoner as
//! `{"pid": .., "tid": ..}`); the functions are public for programs that show or store
//! those times themselves.
//!
//! ```
//! use namedmutex::serde_time::{parse_rfc3339, to_rfc3339};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
//! assert_eq!(to_rfc3339(t), "2024-02-29T12:34:56.789Z");
//! assert_eq!(parse_rfc3339("2024-02-29T12:34:56.789Z"), Some(t));
//! ```

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `SystemTime` as RFC 3339 in UTC with milliseconds; instants before 1970 print as 1970.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// assert_eq!(namedmutex::serde_time::to_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
/// ```
pub fn to_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The inverse of [`to_rfc3339`]: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only, up to nine
/// fraction digits, from 1970 on); `None` for anything else.
///
/// ```
/// use namedmutex::serde_time::parse_rfc3339;
/// assert!(parse_rfc3339("2024-02-29T12:34:56Z").is_some());
/// assert!(parse_rfc3339("2024-02-29 12:34:56").is_none());
/// ```
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = s.get(19..)?.strip_suffix('Z')?;
    let nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(frac) if (1..=9).contains(&frac.len()) && frac.bytes().all(|c| c.is_ascii_digit()) => {
            frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

// Howard Hinnant's civil calendar algorithms (days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Option<SystemTime>` as an RFC 3339 string or `null`.
pub(crate) mod opt_time {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        t.map(to_rfc3339).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse_rfc3339(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 UTC time: {text:?}"))),
        }
    }
}

/// `Option<(pid, tid)>` as `{"pid": .., "tid": ..}` or `null`.
pub(crate) mod opt_abandoner {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Abandoner {
        pid: u32,
        tid: u32,
    }

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<(u32, u32)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.map(|(pid, tid)| Abandoner { pid, tid }).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(u32, u32)>, D::Error> {
        Ok(Option::<Abandoner>::deserialize(d)?.map(|a| (a.pid, a.tid)))
    }
}

/// `true`, the default of `MutexInfo::accessible` in data written before it existed.
#[doc(hidden)]
pub fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_both_ways() {
        assert_eq!(to_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(to_rfc3339(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56.789Z"), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-02-29 12:34:56Z",
            "2024-02-29T12:34:56",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn mutex_info_round_trips_through_json() {
        use crate::{MutexInfo, Namespace, OwnerInfo};
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        let info = MutexInfo {
            name: "Global\\job".into(),
            namespace: Namespace::Global,
            owner: Some(OwnerInfo {
                pid: Some(7),
                tid: Some(8),
                same_pid_namespace: true,
                uid: Some(1000),
                acquired: Some(t),
                alive: false,
                visible_pid: None,
                stopped: false,
            }),
            count: 1,
            waiters: 2,
            handles: 3,
            stale: false,
            creator_uid: 1000,
            creator_pid: 6,
            created: Some(t),
            abandon_count: 4,
            last_abandoner: Some((5, 9)),
            abandon_note: Some("killed by SIGKILL".into()),
            kept_for_report: true,
            accessible: true,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["namespace"], "global");
        assert_eq!(v["created"], "2024-02-29T12:34:56.789Z");
        assert_eq!(v["owner"]["acquired"], "2024-02-29T12:34:56.789Z");
        assert_eq!(v["last_abandoner"], serde_json::json!({"pid": 5, "tid": 9}));
        let back: MutexInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, info);
        let bad = serde_json::json!({"created": "yesterday"});
        let e = serde_json::from_value::<MutexInfo>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("yesterday"), "{e}");
        assert_eq!(
            serde_json::to_value(crate::ErrorKind::NotOwner).unwrap(),
            "not_owner"
        );
        assert_eq!(
            serde_json::to_value(crate::WaitAny::Abandoned(2)).unwrap(),
            serde_json::json!({"abandoned": 2})
        );
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in (0..146_097 * 2).step_by(7) {
            let t = UNIX_EPOCH + Duration::from_secs(days * 86_400 + 3_723);
            assert_eq!(parse_rfc3339(&to_rfc3339(t)), Some(t));
        }
    }
}
