//! A job's outputs, and `run`: trigger and wait in one call.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use holt_domain::JobStatus;
use hyper::Method;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::{Client, Error, MAX_WAIT, read_answer, trigger_form, with_query};

/// What `run` answered: the job, its status when the call stopped waiting, and its outputs
/// (none unless it has ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The job's token.
    pub token: String,
    /// Its status: terminal, or `Pending`/`Executing` when the wait ran out.
    pub status: JobStatus,
    /// Its outputs as name and value, in the template's declaration order.
    pub outputs: Vec<(String, String)>,
    /// True when an idempotency key or the template's policy answered with an existing job.
    pub existing: bool,
}

impl Client {
    /// A job's outputs, in the template's declaration order: those recorded when it ended
    /// (none before).
    pub async fn outputs(&self, token: &str) -> Result<Vec<(String, String)>, Error> {
        let path = with_query("/api/jobs/outputs", &[("token", token)])?;
        let response = self
            .send(Method::GET, &path, Vec::new(), Bytes::new())
            .await?;
        parse_outputs(&read_answer(response).await?)
    }

    /// Triggers a job like [`Client::trigger`] and waits up to `wait` (at most [`MAX_WAIT`])
    /// for it to end, in one call; a job that has not ended by then goes on, and
    /// [`Client::wait_for_end`] and [`Client::outputs`] follow it.
    pub async fn run<N: AsRef<str>, V: AsRef<str>>(
        &self,
        template: &str,
        variables: &[(N, V)],
        idempotency_key: Option<&str>,
        wait: Duration,
    ) -> Result<Ran, Error> {
        let wait = format!("{:.3}", wait.min(MAX_WAIT).as_secs_f64());
        let fixed = [("template", template), ("wait", wait.as_str())];
        let (headers, body) = trigger_form(&fixed, variables, idempotency_key)?;
        let response = self
            .send(Method::POST, "/api/jobs/run", headers, body.into())
            .await?;
        let existing = response.headers().contains_key("x-holt-existing-job");
        let text = read_answer(response).await?;
        let bad = |why: &str| Error::Protocol(format!("not a run answer ({why}): {text:?}"));
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("JSON"))?;
        let token = value["token"].as_str().ok_or_else(|| bad("token"))?;
        let status = value["status"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status"))?;
        // The outputs are read again from the text, so that their order is the server's.
        let outputs = serde_json::Deserializer::from_str(&text)
            .deserialize_map(RunVisitor)
            .map_err(|_| bad("outputs"))?;
        Ok(Ran {
            token: token.to_owned(),
            status,
            outputs,
            existing,
        })
    }
}

/// Outputs as the server sends them: a JSON object of strings, in its order.
fn parse_outputs(text: &str) -> Result<Vec<(String, String)>, Error> {
    serde_json::Deserializer::from_str(text)
        .deserialize_map(OrderedStrings)
        .map_err(|e| Error::Protocol(format!("not a JSON object of strings: {e}")))
}

/// Reads a JSON object of strings into pairs, keeping the members' order.
struct OrderedStrings;

impl<'de> Visitor<'de> for OrderedStrings {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry::<String, String>()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

/// Reads the `outputs` member of a run answer, keeping its order; the other members are
/// skipped.
struct RunVisitor;

impl<'de> Visitor<'de> for RunVisitor {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a run answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut outputs = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "outputs" {
                outputs = map.next_value_seed(OutputsSeed)?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(outputs)
    }
}

struct OutputsSeed;

impl<'de> serde::de::DeserializeSeed<'de> for OutputsSeed {
    type Value = Vec<(String, String)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(OrderedStrings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_the_servers_order() {
        let pairs = parse_outputs(r#"{"Z":"1","A":"a\"b"}"#).unwrap();
        assert_eq!(
            pairs,
            [("Z".into(), "1".into()), ("A".into(), "a\"b".into())]
        );
        assert!(parse_outputs(r#"{"Z":1}"#).is_err());
        assert!(parse_outputs("[]").is_err());
    }

    #[test]
    fn a_run_answers_outputs_in_order() {
        let text = r#"{"token":"7","status":"Succeeded","outputs":{"b":"2","a":"1"}}"#;
        let outputs = serde_json::Deserializer::from_str(text)
            .deserialize_map(RunVisitor)
            .unwrap();
        assert_eq!(
            outputs,
            [("b".into(), "2".into()), ("a".into(), "1".into())]
        );
    }
}
