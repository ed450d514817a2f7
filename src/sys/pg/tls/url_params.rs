//! The two forms of a libpq connection string, `postgresql://...?key=value&...` and
//! `key=value key='quoted value'`: the TLS parameters taken out of either, the rest kept as
//! written (quoting and %-escapes included) for the `postgres` crate.

use super::invalid;
use crate::sys::contract::Result;

/// The parameters the `postgres` crate does not know, as the URL gave them.
#[derive(Debug, Default)]
pub(in crate::sys::pg) struct Params {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub sslpassword: Option<String>,
    pub sslcrl: Option<String>,
    pub sslcrldir: Option<String>,
    /// `postgres` or `direct`: taken out so that a service file or `PGSSLNEGOTIATION` can
    /// give what the URL leaves out, and `direct` be checked against the mode.
    pub sslnegotiation: Option<String>,
    /// libpq's `service` (not TLS, but the crate does not know it either).
    pub service: Option<String>,
    /// libpq's `connect_timeout`, whose 0 (no bound) the crate reads as unset.
    pub connect_timeout: Option<String>,
}

impl Params {
    /// Keeps the value of `key` when it is one of ours (true), else leaves it (false).
    fn take(&mut self, key: &str, value: impl FnOnce() -> Result<String>) -> Result<bool> {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "sslpassword" => &mut self.sslpassword,
            "sslcrl" => &mut self.sslcrl,
            "sslcrldir" => &mut self.sslcrldir,
            "sslnegotiation" => &mut self.sslnegotiation,
            "service" => &mut self.service,
            "connect_timeout" => &mut self.connect_timeout,
            _ => return Ok(false),
        };
        *slot = Some(value()?);
        Ok(true)
    }
}

/// Splits `url` (either form) into the rest, for the `postgres` crate, and our parameters.
pub(super) fn take_params(url: &str) -> Result<(String, Params)> {
    if is_url(url) {
        take_from_url(url)
    } else {
        take_from_key_values(url)
    }
}

pub(super) fn is_url(url: &str) -> bool {
    url.starts_with("postgresql://") || url.starts_with("postgres://")
}

fn take_from_url(url: &str) -> Result<(String, Params)> {
    let mut params = Params::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !params.take(&decode(key)?, || decode(value))? {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

/// Percent-decoding of a URL's query part.
fn decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("{s:?} in the URL has a bad %-escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{s:?} in the URL is not UTF-8")))
}

/// The same for a `key=value key='quoted value'` string (libpq's rules: spaces around `=`,
/// single quotes, backslash escapes).
fn take_from_key_values(s: &str) -> Result<(String, Params)> {
    let mut params = Params::default();
    let mut kept = Vec::new();
    for pair in KeyValues(s.trim_start()) {
        match pair {
            Pair::Value { key, raw, value } => {
                let value = value?;
                if !params.take(key, || Ok(value))? {
                    kept.push(format!("{key}={raw}"));
                }
            }
            // Not ours to judge: the `postgres` crate reports it.
            Pair::Rest(rest) => kept.push(rest.to_string()),
        }
    }
    Ok((kept.join(" "), params))
}

/// One item of a key=value string.
enum Pair<'a> {
    /// `key=raw`, where `raw` as written means `value` (or could not be read).
    Value {
        key: &'a str,
        raw: &'a str,
        value: Result<String>,
    },
    /// What follows a key without `=` (the last item).
    Rest(&'a str),
}

/// The items of a key=value string, in order; an item whose value cannot be read (an
/// unterminated quote) is the last.
struct KeyValues<'a>(&'a str);

impl<'a> Iterator for KeyValues<'a> {
    type Item = Pair<'a>;

    fn next(&mut self) -> Option<Pair<'a>> {
        let rest = self.0;
        if rest.is_empty() {
            return None;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let Some(after_eq) = rest[key_end..].trim_start().strip_prefix('=') else {
            self.0 = "";
            return Some(Pair::Rest(rest));
        };
        let after_eq = after_eq.trim_start();
        match value_at(after_eq) {
            Ok((value, len)) => {
                self.0 = after_eq[len..].trim_start();
                Some(Pair::Value {
                    key,
                    raw: &after_eq[..len],
                    value: Ok(value),
                })
            }
            Err(e) => {
                self.0 = "";
                Some(Pair::Value {
                    key,
                    raw: after_eq,
                    value: Err(e),
                })
            }
        }
    }
}

/// The value at the start of `s` and how many bytes it takes there.
fn value_at(s: &str) -> Result<(String, usize)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    if s.starts_with('\'') {
        chars.next();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                '\'' => return Ok((value, i + 1)),
                c => value.push(c),
            }
        }
        return Err(invalid(format!(
            "the connection string has an unterminated quoted value: {s:?}"
        )));
    }
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => return Ok((value, i)),
            '\\' => {
                if let Some((_, e)) = chars.next() {
                    value.push(e);
                }
            }
            c => value.push(c),
        }
    }
    Ok((value, s.len()))
}

/// `url` with `key=value` added (a URL's query or a key=value string).
pub(super) fn with_param(url: &str, key: &str, value: &str, url_form: bool) -> String {
    if !url_form {
        return format!("{url} {key}={value}").trim_start().to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// Keys whose values are secrets: never shown in a message.
const SECRETS: &[&str] = &["password", "sslpassword"];

/// `url` (either form) with the values of secret keys, and a URL's `user:password@`
/// password, shown as `***`. A string that does not parse is cut to what is certainly not
/// a secret.
pub(in crate::sys::pg) fn redact(url: &str) -> String {
    if is_url(url) {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let rest = &base[scheme_end..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let base = match rest[..authority_end].rfind('@') {
            Some(at) if rest[..at].contains(':') => {
                let user = &rest[..rest[..at].find(':').unwrap_or(at)];
                format!("{}{user}:***{}", &base[..scheme_end], &rest[at..])
            }
            _ => base.to_owned(),
        };
        if query.is_empty() {
            return base;
        }
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                match decode(key) {
                    Ok(k) if SECRETS.contains(&k.as_str()) => format!("{key}=***"),
                    Ok(_) => pair.to_owned(),
                    Err(_) => "?".to_owned(),
                }
            })
            .collect();
        return format!("{base}?{}", pairs.join("&"));
    }
    let mut shown = Vec::new();
    for pair in KeyValues(url.trim_start()) {
        shown.push(match pair {
            // An unterminated quote: what follows may all be the secret.
            Pair::Value {
                key, value: Err(_), ..
            } => format!("{key}=..."),
            Pair::Value { key, .. } if SECRETS.contains(&key) => format!("{key}=***"),
            Pair::Value { key, raw, .. } => format!("{key}={raw}"),
            Pair::Rest(rest) => rest.split_whitespace().next().unwrap_or("").to_owned(),
        });
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secrets_never_reach_messages() {
        for (url, shown) in [
            (
                "postgresql://bob:s3cret@db:5432/x",
                "postgresql://bob:***@db:5432/x",
            ),
            ("postgres://bob@db/x", "postgres://bob@db/x"),
            (
                "postgresql://db/x?password=s3cret&sslmode=require",
                "postgresql://db/x?password=***&sslmode=require",
            ),
            (
                "postgresql://db/x?ssl%70assword=s3cret",
                "postgresql://db/x?ssl%70assword=***",
            ),
            ("postgresql://bob:a@b@db/x", "postgresql://bob:***@db/x"),
            (
                "host=db password=s3cret user=bob",
                "host=db password=*** user=bob",
            ),
            (
                "host=db password = 'two words' user=bob",
                "host=db password=*** user=bob",
            ),
            ("host=db sslpassword='s3cret", "host=db sslpassword=..."),
            (
                r"host=db password='it\'s s3cret' x",
                "host=db password=*** x",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert!(!redact(url).contains("s3cret") && !redact(url).contains("words"));
        }
    }
}
