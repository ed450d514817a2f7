//! The two forms of a libpq connection string, `postgresql://...?key=value&...` and
//! `key=value key='quoted value'`: the TLS parameters taken out of either, the rest kept as
//! written (quoting and %-escapes included) for the `postgres` crate.

use super::invalid;
use crate::sys::contract::Result;

/// The parameters the `postgres` crate does not know, as the URL gave them.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub sslcrl: Option<String>,
    pub sslcrldir: Option<String>,
    /// libpq's `service` (not TLS, but the crate does not know it either).
    pub service: Option<String>,
}

impl Params {
    /// Keeps the value of `key` when it is one of ours (true), else leaves it (false).
    fn take(&mut self, key: &str, value: impl FnOnce() -> Result<String>) -> Result<bool> {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "sslcrl" => &mut self.sslcrl,
            "sslcrldir" => &mut self.sslcrldir,
            "service" => &mut self.service,
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
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let after_key = rest[key_end..].trim_start();
        let Some(after_eq) = after_key.strip_prefix('=') else {
            // Not ours to judge: the `postgres` crate reports it.
            kept.push(rest.to_string());
            break;
        };
        let after_eq = after_eq.trim_start();
        let (value, len) = value_at(after_eq)?;
        let raw = &after_eq[..len];
        if !params.take(key, || Ok(value))? {
            kept.push(format!("{key}={raw}"));
        }
        rest = after_eq[len..].trim_start();
    }
    Ok((kept.join(" "), params))
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
