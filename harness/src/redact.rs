//! Secrets never enter a bundle, a log or a report. This module is the one
//! place that decides what a secret looks like and how it is masked:
//!
//! - **keys**: a config or header key that names a secret (`api_key`,
//!   `hf_token`, `X-Api-Key`, …, see [`is_secret_key`]) has its value masked;
//!   header values are always masked;
//! - **URLs**: the user-info (`http://user:password@host`) and query
//!   parameters that carry keys, tokens or signatures (`?api-key=…`,
//!   `X-Amz-Signature=…`, `sig=…`) are masked wherever a URL is shown, logged
//!   or stored ([`url`]); free text has every URL in it masked ([`text`]);
//! - **values**: secret values the process has read (API keys from the
//!   environment, header values, URL passwords) are registered with
//!   [`register`] and replaced wherever they appear in text, e.g. a server's
//!   error message that echoes the key.
//!
//! The mask is `****`.

use serde_json::Value;
use std::sync::{OnceLock, RwLock};

pub const MASK: &str = "****";

/// Keys whose values are masked wherever the config is shown or stored: a
/// key with a word (split at `_`, `-`, `.`) like `key`, `token` or `secret`
/// (`api_key`, `hf_token`, `x-api-key`), but not counts like `prompt_tokens`
/// nor `*_env` (the name of a variable, not its value).
pub fn is_secret_key(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "authorization",
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
        "cookie",
        "signature",
    ];
    let k = key.to_ascii_lowercase();
    !k.ends_with("_env") && k.split(['_', '-', '.']).any(|w| WORDS.contains(&w))
}

/// Query parameters that carry a secret: every secret key, plus the short
/// names signed and keyed URLs use (`sig` of Azure SAS, `code` of Azure
/// Functions, `auth`, `access_token`).
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    is_secret_key(&n) || matches!(n.as_str(), "sig" | "code" | "auth" | "pass" | "pwd")
}

fn registry() -> &'static RwLock<Vec<String>> {
    static R: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a secret value read by this process, so that [`text`] masks it
/// wherever it appears. Values shorter than 4 characters are ignored (they
/// would mask ordinary words).
pub fn register(secret: &str) {
    if secret.chars().count() < 4 {
        return;
    }
    let mut r = registry().write().expect("secret registry");
    if !r.iter().any(|s| s == secret) {
        r.push(secret.to_string());
        // Longest first, so a secret containing another is masked whole.
        r.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// A URL cut where its secrets can be:
/// `scheme://[userinfo@]host[path][?query][#fragment]`.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    /// `None` for text without `://`.
    fn of(u: &'a str) -> Option<Parts<'a>> {
        let (scheme, rest) = u.split_once("://")?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        Some(Parts {
            scheme,
            userinfo,
            host,
            path,
            query,
            fragment,
        })
    }

    /// The query's `(name, value)` pairs that carry a secret.
    fn secret_params(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| is_secret_param(k))
    }
}

/// Registers the secrets inside a URL (its password and secret query values).
pub fn register_url(u: &str) {
    let Some(p) = Parts::of(u) else { return };
    if let Some(userinfo) = p.userinfo {
        register(userinfo.split_once(':').map(|x| x.1).unwrap_or(userinfo));
    }
    for (_, v) in p.secret_params() {
        register(v);
    }
}

/// A URL with its user-info and secret query values masked:
/// `http://user:pw@h:8000/v1?api-key=abc&x=1` → `http://****@h:8000/v1?api-key=****&x=1`.
pub fn url(u: &str) -> String {
    let Some(p) = Parts::of(u) else {
        return u.to_string();
    };
    let mut s = format!("{}://", p.scheme);
    if p.userinfo.is_some() {
        s.push_str(MASK);
        s.push('@');
    }
    s.push_str(p.host);
    s.push_str(p.path);
    if let Some(q) = p.query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        s.push('?');
        s.push_str(&pairs.join("&"));
    }
    if let Some(f) = p.fragment {
        s.push('#');
        s.push_str(f);
    }
    s
}

/// Free text with every URL in it masked ([`url`]) and every registered secret
/// value replaced by the mask.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        // The scheme: letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map(|p| p + 1)
            .unwrap_or(0);
        let end = rest[i + 3..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')' | '`' | '\\')
            })
            .map(|p| i + 3 + p)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    let mut out = auth_values(&out);
    let secrets = registry().read().expect("secret registry");
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Masks the credential after an HTTP auth scheme (`Bearer sk-…`,
/// `Basic dXNlcjpwdw==`), as a server may echo the header it was sent.
fn auth_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let found = ["Bearer ", "Basic ", "bearer ", "basic "]
            .iter()
            .filter_map(|k| rest.find(k).map(|i| (i, k.len())))
            .min();
        let Some((i, n)) = found else { break };
        let start = i + n;
        let len = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._~+/=-".contains(c)))
            .unwrap_or(rest.len() - start);
        out.push_str(&rest[..start]);
        // A credential, not a word: at least 8 characters.
        if len >= 8 {
            out.push_str(MASK);
        } else {
            out.push_str(&rest[start..start + len]);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// A command-line argument or `--set PATH=VALUE` as shown or stored: the
/// value is masked when the last key of PATH names a secret
/// (`endpoints[0].headers.x-api-key=…`), and URL credentials anywhere ([`text`]).
pub fn arg(a: &str) -> String {
    match a.split_once('=') {
        Some((k, _)) if is_secret_key(k.rsplit('.').next().unwrap_or(k)) => format!("{k}={MASK}"),
        _ => text(a),
    }
}

/// Masks a config value for display or storage: values of secret keys and
/// of every header, and the secrets inside any string ([`text`]).
pub fn value(v: &mut Value) {
    fn walk(v: &mut Value, in_headers: bool) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    if (in_headers || is_secret_key(k))
                        && !child.is_object()
                        && !child.is_array()
                        && !child.is_null()
                    {
                        *child = Value::String(MASK.into());
                    } else {
                        walk(child, k == "headers");
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, false)),
            Value::String(s) => *s = text(s),
            _ => {}
        }
    }
    walk(v, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_words_not_substrings() {
        for k in [
            "api_key",
            "hf_token",
            "X-Api-Key",
            "Authorization",
            "aws_secret_access_key",
            "session_token",
            "password",
            "apikey",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "prompt_tokens",
            "shared_prefix_tokens",
            "max_tokens",
            "tokenizer",
            "api_key_env",
            "monkey",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn url_credentials_are_masked() {
        assert_eq!(
            url("http://user:pw@127.0.0.1:8000/v1"),
            "http://****@127.0.0.1:8000/v1"
        );
        assert_eq!(url("https://tok@h/v1"), "https://****@h/v1");
        assert_eq!(
            url("https://x.openai.azure.com/openai?api-version=2024-02-01&api-key=abc#f"),
            "https://x.openai.azure.com/openai?api-version=2024-02-01&api-key=****#f"
        );
        assert_eq!(
            url("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&X-Amz-Security-Token=t&X-Amz-Expires=60"),
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=****&X-Amz-Signature=****&X-Amz-Security-Token=****&X-Amz-Expires=60"
        );
        assert_eq!(
            url("https://a.blob/c?sv=1&sig=zz"),
            "https://a.blob/c?sv=1&sig=****"
        );
        assert_eq!(url("http://127.0.0.1:8000/v1"), "http://127.0.0.1:8000/v1");
        // An @ in the path is not user-info.
        assert_eq!(url("http://h/v1/a@b"), "http://h/v1/a@b");
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let t = "error sending request for url (http://u:hunter2@10.0.0.1:9/v1/chat/completions): refused";
        assert_eq!(
            text(t),
            "error sending request for url (http://****@10.0.0.1:9/v1/chat/completions): refused"
        );
        assert_eq!(
            text("see \"https://h/x?token=abc\" and ftp://a@b"),
            "see \"https://h/x?token=****\" and ftp://****@b"
        );
    }

    #[test]
    fn echoed_auth_headers_are_masked() {
        assert_eq!(
            text("Incorrect API key provided: Bearer sk-abc123456; Basic YWRtaW46aHVudGVy"),
            "Incorrect API key provided: Bearer ****; Basic ****"
        );
        assert_eq!(text("the Basic plan"), "the Basic plan");
    }

    #[test]
    fn registered_values_are_masked_anywhere() {
        register("sk-registered-XYZ");
        assert_eq!(
            text("Incorrect API key provided: sk-registered-XYZ."),
            "Incorrect API key provided: ****."
        );
        register("ab"); // too short to register
        assert_eq!(text("ab cd"), "ab cd");
    }
}
