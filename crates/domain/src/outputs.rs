//! What a job hands back when it ends: the final values of its template's declared outputs, and
//! the completion webhooks a template asks for.

use crate::{JobStatus, VarName};

/// The final values of a template's declared outputs when a job ended, in declaration order.
/// An output whose variable was never set is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs(Vec<(VarName, String)>);

impl Outputs {
    /// The most bytes one output value may hold; a longer value is not recorded (the job's log
    /// says so), so that a job's outputs stay small enough to answer and send whole.
    pub const MAX_VALUE_BYTES: usize = 64 * 1024;

    /// The most outputs a template may declare.
    pub const MAX_DECLARED: usize = 32;

    /// No outputs.
    pub fn new() -> Self {
        Outputs(Vec::new())
    }

    /// Adds an output after those already there; a name already present is replaced in place.
    pub fn insert(&mut self, name: VarName, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of an output, by name (ignoring case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.key() == name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The outputs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&VarName, &str)> {
        self.0.iter().map(|(n, v)| (n, v.as_str()))
    }

    /// How many outputs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The outputs as a JSON object, members in declaration order, names as declared.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, name.as_str());
            out.push(':');
            push_json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

/// Appends `s` as a JSON string: quoted, with quotes, backslashes and control characters
/// escaped.
pub fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl FromIterator<(VarName, String)> for Outputs {
    fn from_iter<I: IntoIterator<Item = (VarName, String)>>(iter: I) -> Self {
        let mut outputs = Outputs::new();
        for (name, value) in iter {
            outputs.insert(name, value);
        }
        outputs
    }
}

/// A completion webhook a template asks for: where to POST, for which ends, and the
/// environment variable holding the key its body is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// An `http://` URL.
    pub url: String,
    /// The terminal statuses that send it.
    pub on: Vec<JobStatus>,
    /// The environment variable of holtd's holding the HMAC-SHA256 key, if the body is signed.
    pub secret_env: Option<String>,
}

impl Notify {
    /// The longest URL accepted.
    pub const MAX_URL_BYTES: usize = 2048;

    /// The most webhooks a template may list.
    pub const MAX_PER_TEMPLATE: usize = 8;

    /// What the server's own log may show of the URL: scheme, host, port and path, never
    /// user information or the query, which could hold a token.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }
}

/// Scheme, host, port and path of a URL, without user information, query or fragment.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// Whether `name` can name an environment variable: letters, digits and `_`, not starting with
/// a digit, at most 128 bytes.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && name.len() <= 128
}

/// Why a webhook URL is refused, if it is: it must be `http://` or `https://` with a host and
/// no user information, at most [`Notify::MAX_URL_BYTES`] long, with no spaces or control
/// characters.
pub fn url_problem(url: &str) -> Option<String> {
    if url.len() > Notify::MAX_URL_BYTES {
        return Some(format!(
            "url is longer than {} bytes",
            Notify::MAX_URL_BYTES
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("url must not contain spaces or control characters".into());
    }
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        _ => return Some("url must start with http:// or https://".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some("url must not hold user information (user:password@)".into());
    }
    let host = authority;
    if host.is_empty() || host.starts_with(':') {
        return Some("url must name a host".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_drops_user_information_query_and_fragment() {
        assert_eq!(
            shown_url("https://user:pw@hooks.example.com:8443/a/b?token=x#f"),
            "https://hooks.example.com:8443/a/b"
        );
        assert_eq!(shown_url("http://h?k=v"), "http://h");
        assert_eq!(shown_url("http://h/p"), "http://h/p");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(url_problem("http://127.0.0.1:9/x"), None);
        assert_eq!(url_problem("http://h:8080/x?y"), None);
        assert_eq!(url_problem("https://hooks.example.com/x?y"), None);
        assert_eq!(url_problem("https://127.0.0.1:8443/"), None);
        for bad in [
            "https://a:b@h/",
            "https:///x",
            "HTTPS://h/",
            "http://a@h/x",
            "ftp://h/",
            "h/x",
            "http://",
            "http:///x",
            "http://:80/",
            "http://h/ x",
        ] {
            assert!(url_problem(bad).is_some(), "{bad} was accepted");
        }
        assert!(url_problem(&format!("http://h/{}", "a".repeat(3000))).is_some());
    }

    #[test]
    fn environment_names_are_plain() {
        assert!(is_env_name("HOLT_HOOK_KEY"));
        assert!(is_env_name("_k1"));
        assert!(!is_env_name("1K"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn outputs_are_a_json_object_in_declaration_order() {
        let o: Outputs = [("Z", "a\"b\\c\n\u{1}ü"), ("A", "")]
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v.to_owned()))
            .collect();
        let json = o.to_json();
        assert_eq!(json, r#"{"Z":"a\"b\\c\n\u0001ü","A":""}"#);
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(back["Z"], "a\"b\\c\n\u{1}ü");
        assert_eq!(Outputs::new().to_json(), "{}");
    }

    #[test]
    fn outputs_keep_declaration_order_and_replace_in_place() {
        let mut o = Outputs::new();
        o.insert("B".parse().unwrap(), "1".into());
        o.insert("a".parse().unwrap(), "2".into());
        o.insert("b".parse().unwrap(), "3".into());
        let seen: Vec<_> = o.iter().map(|(n, v)| (n.as_str().to_owned(), v)).collect();
        assert_eq!(seen, [("B".to_owned(), "3"), ("a".to_owned(), "2")]);
        assert_eq!(o.get("A"), Some("2"));
    }
}
