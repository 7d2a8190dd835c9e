//! Request parameters: the query string and, for form posts, the body. Names that are not
//! reserved become job-scoped variables.

use std::fmt;

/// One problem with the parameters, answered with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadParams(pub(crate) String);

impl fmt::Display for BadParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Name-value pairs in the order given: the query string's first, then the body's.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Adds the pairs of a form-encoded text (a query string or a form body).
    pub(crate) fn extend_form(&mut self, raw: &[u8], what: &str) -> Result<(), BadParams> {
        check_encoding(raw).map_err(|e| BadParams(format!("malformed {what}: {e}")))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
            .map_err(|e| BadParams(format!("malformed {what}: {e}")))?;
        self.pairs.extend(pairs);
        Ok(())
    }

    /// Adds the members of a JSON body: a flat object of string values. Otter's `API_Key`
    /// member is the API key. A member given twice (names compared ignoring case, `API_Key`
    /// counting as `key`) is ambiguous, as a repeated form pair is, and refused.
    pub(crate) fn extend_json(&mut self, raw: &[u8]) -> Result<(), BadParams> {
        let JsonPairs(pairs) = serde_json::from_slice(raw).map_err(|e| {
            if e.is_data() && e.to_string().starts_with("invalid type:") {
                // Only the body itself can have the wrong type: every member's value is taken
                // as any JSON value and checked by the visitor.
                BadParams("a JSON body must be an object of string values".into())
            } else if e.is_data() {
                // One of the visitor's own refusals (or a body that is not an object): the
                // position serde_json appends adds nothing to a message that names the member.
                let text = e.to_string();
                let line = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(message, _)| message);
                BadParams(line.to_owned())
            } else {
                BadParams(format!("malformed JSON body: {e}"))
            }
        })?;
        self.pairs.extend(pairs);
        Ok(())
    }

    /// Removes and returns the reserved parameter `name` (matched ignoring case). Given more
    /// than once, it is ambiguous: which one the caller meant cannot be known, so it is refused.
    pub(crate) fn take(&mut self, name: &str) -> Result<Option<String>, BadParams> {
        let mut found = None;
        let mut count = 0;
        self.pairs.retain(|(k, v)| {
            if k.eq_ignore_ascii_case(name) {
                count += 1;
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        if count > 1 {
            return Err(BadParams(format!(
                "parameter {name} is given more than once"
            )));
        }
        Ok(found)
    }

    /// Adds one pair.
    pub(crate) fn push(&mut self, name: &str, value: String) {
        self.pairs.push((name.to_owned(), value));
    }

    /// The pairs not taken.
    pub(crate) fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

/// The members of a JSON object of strings, in order, read by a visitor that sees every member
/// as written: a map type would keep the last of two equal names and hide the repetition.
struct JsonPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for JsonPairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(JsonPairsVisitor)
    }
}

struct JsonPairsVisitor;

impl<'de> serde::de::Visitor<'de> for JsonPairsVisitor {
    type Value = JsonPairs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON body that is an object of string values")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonPairs, A::Error> {
        use serde::de::Error;
        let mut pairs: Vec<(String, String)> = Vec::new();
        while let Some(written) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            let serde_json::Value::String(text) = value else {
                return Err(A::Error::custom(format!(
                    "JSON member {written} must be a string"
                )));
            };
            let name = if written == "API_Key" {
                "key".to_owned()
            } else {
                written.clone()
            };
            if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(A::Error::custom(format!(
                    "JSON member {written} is given more than once"
                )));
            }
            pairs.push((name, text));
        }
        Ok(JsonPairs(pairs))
    }
}

/// Checks that every percent escape is complete and that every decoded name and value is UTF-8:
/// a parser that quietly kept `%zz` or replaced bad bytes would hand the job a value the client
/// never sent.
fn check_encoding(raw: &[u8]) -> Result<(), &'static str> {
    for part in raw.split(|&b| b == b'&' || b == b'=') {
        let mut decoded = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'%' => {
                    let hex = part.get(i + 1..i + 3).ok_or("incomplete percent escape")?;
                    let text = std::str::from_utf8(hex).map_err(|_| "invalid percent escape")?;
                    let byte =
                        u8::from_str_radix(text, 16).map_err(|_| "invalid percent escape")?;
                    decoded.push(byte);
                    i += 3;
                }
                byte => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&decoded).map_err(|_| "not UTF-8")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Vec<(String, String)>, BadParams> {
        let mut params = Params::default();
        params.extend_form(raw.as_bytes(), "query string")?;
        Ok(params.into_pairs())
    }

    #[test]
    fn decodes_pairs() {
        assert_eq!(
            parse("a=1&b=x+y%20z&c=&d").unwrap(),
            [("a", "1"), ("b", "x y z"), ("c", ""), ("d", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(parse("v=%C3%BC").unwrap()[0].1, "ü");
    }

    #[test]
    fn rejects_bad_encoding() {
        for (raw, why) in [
            ("a=%zz", "malformed query string: invalid percent escape"),
            ("a=%4", "malformed query string: incomplete percent escape"),
            ("a=%ff", "malformed query string: not UTF-8"),
            ("%ff=1", "malformed query string: not UTF-8"),
        ] {
            assert_eq!(parse(raw).unwrap_err().0, why, "{raw}");
        }
        let mut params = Params::default();
        assert!(params.extend_form(b"a=\xff", "form body").is_err());
    }

    #[test]
    fn reserved_names_once_and_in_any_case() {
        let mut params = Params::default();
        params
            .extend_form(b"Template=x&a=1", "query string")
            .unwrap();
        assert_eq!(params.take("template").unwrap().as_deref(), Some("x"));
        assert_eq!(params.take("key").unwrap(), None);
        let mut params = Params::default();
        params.extend_form(b"key=1&KEY=2", "query string").unwrap();
        assert_eq!(
            params.take("key").unwrap_err().0,
            "parameter key is given more than once"
        );
    }

    #[track_caller]
    fn check_json(raw: &str, expect: Result<&[(&str, &str)], &str>) {
        let mut params = Params::default();
        let got = params
            .extend_json(raw.as_bytes())
            .map(|()| params.into_pairs());
        match expect {
            Ok(pairs) => {
                let pairs: Vec<(String, String)> = pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                assert_eq!(got.unwrap(), pairs, "{raw}");
            }
            Err(why) => assert_eq!(got.unwrap_err().0, why, "{raw}"),
        }
    }

    #[test]
    fn json_bodies() {
        check_json(
            r#"{"template":"t","API_Key":"k","A":"1"}"#,
            Ok(&[("template", "t"), ("key", "k"), ("A", "1")]),
        );
        check_json(
            r#"{"A":"1","A":"2"}"#,
            Err("JSON member A is given more than once"),
        );
        check_json(
            r#"{"Target":"1","target":"2"}"#,
            Err("JSON member target is given more than once"),
        );
        check_json(
            r#"{"API_Key":"a","API_Key":"b"}"#,
            Err("JSON member API_Key is given more than once"),
        );
        check_json(
            r#"{"API_Key":"a","key":"b"}"#,
            Err("JSON member key is given more than once"),
        );
        check_json(
            r#"{"template":"a","Template":"b"}"#,
            Err("JSON member Template is given more than once"),
        );
        check_json(r#"{"A":1}"#, Err("JSON member A must be a string"));
        check_json(
            r#"["A"]"#,
            Err("a JSON body must be an object of string values"),
        );
        check_json(
            r#""A""#,
            Err("a JSON body must be an object of string values"),
        );
        let mut params = Params::default();
        let why = params.extend_json(b"{\"A\":").unwrap_err().0;
        assert!(why.starts_with("malformed JSON body: "), "{why}");
        assert!(!why.contains('\n'), "{why}");
    }
}

/// Arbitrary bytes in every parameter path: nothing may panic. A longer run:
/// `PROPTEST_CASES=1000000 cargo test --release -p holt-http fuzz_`.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn fuzz_form_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut params = Params::default();
            let _ = params.extend_form(&raw, "form body");
            let _ = params.take("template");
            let _ = params.take("key");
            for (name, _) in params.into_pairs() {
                let _ = name.parse::<holt_domain::VarName>();
            }
        }

        #[test]
        fn fuzz_json_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut params = Params::default();
            let _ = params.extend_json(&raw);
        }

        #[test]
        fn fuzz_json_objects_with_any_names(names in prop::collection::vec("\\PC{0,6}|[\n\r\u{2028}a]{1,3}", 0..6)) {
            let members: Vec<String> = names
                .iter()
                .map(|n| format!("{}:\"v\"", serde_json::to_string(n).unwrap()))
                .collect();
            let raw = format!("{{{}}}", members.join(","));
            let mut params = Params::default();
            match params.extend_json(raw.as_bytes()) {
                Ok(()) => prop_assert_eq!(params.into_pairs().len(), names.len()),
                Err(e) => prop_assert!(e.0.contains("more than once"), "{}", e.0),
            }
        }

        #[test]
        fn fuzz_form_like_text_round_trips(pairs in prop::collection::vec(("[a-zA-Z][a-zA-Z0-9_-]{0,8}", "\\PC{0,12}"), 0..6)) {
            let raw = serde_urlencoded::to_string(&pairs).unwrap();
            let mut params = Params::default();
            params.extend_form(raw.as_bytes(), "query string").unwrap();
            prop_assert_eq!(params.into_pairs(), pairs);
        }
    }
}
