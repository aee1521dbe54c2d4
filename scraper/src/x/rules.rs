//! Syncing the X filtered stream's rules with the configured ones: read what X holds, add what it lacks,
//! delete what is not configured, and leave the rest alone, so that a restart with the same configuration
//! changes nothing and the stream keeps its rule ids.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::Redirect;
use crate::secret::Secret;

/// A rule as configured: its value (the query) and an optional tag.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// What a sync did (or, on a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub added: Vec<Rule>,
    /// X's id of each deleted rule, with the rule.
    pub deleted: Vec<(String, Rule)>,
    /// How many of X's rules were already as configured.
    pub kept: usize,
}

/// One rule X refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The rule's value (for a refused delete, the value of the rule with that id).
    pub value: String,
    /// X's problem title, e.g. `UnprocessableEntity` or `DuplicateRule`.
    pub title: String,
    pub details: Vec<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A problem about the request as a whole (e.g. too many rules) names no rule.
        if !self.value.is_empty() {
            write!(f, "`{}`: ", self.value)?;
        }
        f.write_str(&self.title)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details.join("; "))?;
        }
        Ok(())
    }
}

/// Why a sync failed, sorted by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// 401 or 403: retrying cannot help; the operator must fix the token or the app's access level.
    #[error(
        "X refused the bearer token with {status} ({detail}): check X_BEARER_TOKEN and that its app's access \
         level includes the filtered stream"
    )]
    Unauthorized { status: u16, detail: String },
    /// X refused some configured rules (invalid, or a duplicate): the configuration must change.
    #[error("X refused {} rule(s): {}", errors.len(), list(errors))]
    Rejected { errors: Vec<Refusal> },
    /// Any other error status (429, 5xx, ...): worth retrying later.
    #[error("X answered {status} to a rules request: {body}")]
    Http { status: u16, body: String },
    #[error("could not talk to X's rules endpoint: {0}")]
    Network(#[from] reqwest::Error),
    #[error("X's rules response is not in the documented shape: {0}")]
    Parse(#[from] serde_json::Error),
    /// Not followed, so that the bearer token reaches no other host.
    #[error(
        "X's rules endpoint answered with {0}, which the scraper does not follow, so that the bearer token \
         reaches no other host: check X_API_BASE_URL"
    )]
    Redirected(Redirect),
    /// X allows at most 1,000 rules of at most 1,024 characters: a body past [`MAX_RULES_RESPONSE`] is
    /// not X's answer.
    #[error("X's rules response ({status}) is over {MAX_RULES_RESPONSE} bytes: not read further")]
    TooLarge { status: u16 },
}

/// The most bytes of a rules response read: 1,000 rules of 1,024 characters, JSON-escaped, with ids and
/// tags, fit many times over.
pub const MAX_RULES_RESPONSE: usize = 16 << 20;

fn list(refusals: &[Refusal]) -> String {
    refusals.iter().map(Refusal::to_string).collect::<Vec<_>>().join(", ")
}

/// Reads the rules configured as JSON, in X's own format (`[{"value":"cat has:images","tag":"cats"}]`), from
/// `X_STREAM_RULES` or `--rules`. An empty tag counts as none, as X lists an untagged rule without one.
pub fn parse_rules_json(text: &str) -> Result<Vec<Rule>, serde_json::Error> {
    let mut rules: Vec<Rule> = serde_json::from_str(text)?;
    for (n, rule) in rules.iter_mut().enumerate() {
        if rule.value.trim().is_empty() {
            return Err(serde::de::Error::custom(format!("rule {} has an empty value", n + 1)));
        }
        if rule.tag.as_deref() == Some("") {
            rule.tag = None;
        }
    }
    Ok(rules)
}

/// Makes the stream's rules exactly `desired`: adds the configured rules X lacks, deletes the ones not
/// configured (a rule is identified by value and tag), and leaves the rest alone. Deletes go in one request,
/// adds in another; when nothing changes, only the rules are read. With `dry_run`, sends `?dry_run=true` so
/// that X validates without changing anything, and reports what would change.
pub async fn sync(
    client: &reqwest::Client,
    base_url: &str,
    token: &Secret,
    desired: &[Rule],
    dry_run: bool,
) -> Result<Synced, RulesError> {
    let api = Api {
        client,
        endpoint: format!("{}/2/tweets/search/stream/rules", base_url.trim_end_matches('/')),
        token,
        dry_run,
    };
    let current = api.list().await?;
    let (add, delete) = plan(&current, desired);
    let kept = current.len() - delete.len();
    if add.is_empty() && delete.is_empty() {
        tracing::info!(kept, "the stream's rules are as configured");
        return Ok(Synced { kept, ..Synced::default() });
    }
    // Adds go first, so that a rule X refuses leaves the old set in place. But X holds one rule per value,
    // so a rule whose tag changed can only be added once its old version is gone.
    let retagged = add.iter().any(|rule| delete.iter().any(|(_, old)| old.value == rule.value));
    if retagged {
        api.delete(&delete).await?;
        api.add(&add, &delete).await?;
    } else {
        api.add(&add, &delete).await?;
        api.delete(&delete).await?;
    }
    Ok(Synced { added: add, deleted: delete, kept })
}

/// What to add and what to delete (by id) so that `current` becomes `desired`. A rule configured twice is
/// added once; a rule X holds twice is kept once.
fn plan(current: &[(String, Rule)], desired: &[Rule]) -> (Vec<Rule>, Vec<(String, Rule)>) {
    let mut wanted: Vec<&Rule> = Vec::with_capacity(desired.len());
    for rule in desired {
        if !wanted.contains(&rule) {
            wanted.push(rule);
        }
    }
    let mut held = vec![false; wanted.len()];
    let mut delete = Vec::new();
    for (id, rule) in current {
        match wanted.iter().zip(&held).position(|(wanted, held)| !held && *wanted == rule) {
            Some(at) => held[at] = true,
            None => delete.push((id.clone(), rule.clone())),
        }
    }
    let add = wanted.into_iter().zip(held).filter(|(_, held)| !held).map(|(rule, _)| rule.clone()).collect();
    (add, delete)
}

/// The rules endpoint, as one sync uses it.
struct Api<'a> {
    client: &'a reqwest::Client,
    endpoint: String,
    token: &'a Secret,
    dry_run: bool,
}

/// A page of `GET .../rules`; X leaves `data` out when there are no rules.
#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    data: Vec<Listed>,
    #[serde(default)]
    meta: ListingMeta,
}

#[derive(Deserialize)]
struct Listed {
    id: String,
    value: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Default, Deserialize)]
struct ListingMeta {
    #[serde(default)]
    next_token: Option<String>,
}

/// The answer to an add or a delete; only its `errors` matter, since success is the absence of them.
#[derive(Deserialize)]
struct Changed {
    #[serde(default)]
    errors: Vec<RuleProblem>,
}

/// An entry of `errors`: `{"value":"bad(","details":["..."],"title":"UnprocessableEntity",...}`, or
/// `{"title":"DuplicateRule","value":"...","id":"..."}` naming the rule X already holds.
#[derive(Deserialize)]
struct RuleProblem {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    details: Vec<String>,
}

impl RuleProblem {
    fn refusal(self, value: String) -> Refusal {
        let details = if self.details.is_empty() { self.detail.into_iter().collect() } else { self.details };
        Refusal { value, title: self.title, details }
    }
}

/// An error status's problem body: `{"title":"Unauthorized","status":401,"detail":"Unauthorized"}`.
#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

impl Api<'_> {
    /// Every rule X holds, following `next_token` across pages.
    async fn list(&self) -> Result<Vec<(String, Rule)>, RulesError> {
        let mut rules = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut request = self.client.get(&self.endpoint).bearer_auth(self.token.expose());
            if let Some(token) = &page {
                request = request.query(&[("pagination_token", token)]);
            }
            let (status, body) = send(request).await?;
            if !status.is_success() {
                return Err(failure(status, &body));
            }
            let listing: Listing = parse(&body)?;
            rules.extend(listing.data.into_iter().map(|listed| {
                let tag = listed.tag.filter(|tag| !tag.is_empty());
                (listed.id, Rule { value: listed.value, tag })
            }));
            // A token repeated would loop forever; X never sends one, but a proxy replaying a page might.
            match listing.meta.next_token {
                Some(next) if page.as_ref() != Some(&next) => page = Some(next),
                _ => return Ok(rules),
            }
        }
    }

    /// Adds `rules` in one request. `deleting` is what this sync deletes: on a dry run X still holds those
    /// rules, so it calls a re-tagged rule a duplicate of its old version, which the real run will not.
    async fn add(&self, rules: &[Rule], deleting: &[(String, Rule)]) -> Result<(), RulesError> {
        if rules.is_empty() {
            return Ok(());
        }
        let changed = self.change(&json!({ "add": rules })).await?;
        let refused: Vec<Refusal> = changed
            .errors
            .into_iter()
            .filter(|problem| {
                let replaced = deleting
                    .iter()
                    .any(|(id, old)| problem.id.as_ref() == Some(id) || problem.value.as_ref() == Some(&old.value));
                !(self.dry_run && problem.title == "DuplicateRule" && replaced)
            })
            .map(|problem| {
                let value = problem.value.clone().unwrap_or_default();
                problem.refusal(value)
            })
            .collect();
        if !refused.is_empty() {
            return Err(RulesError::Rejected { errors: refused });
        }
        for rule in rules {
            let (value, tag) = (&rule.value, rule.tag.as_deref().unwrap_or_default());
            if self.dry_run {
                tracing::info!(value, tag, "dry run: would add rule");
            } else {
                tracing::info!(value, tag, "added rule");
            }
        }
        Ok(())
    }

    /// Deletes `rules` by id in one request.
    async fn delete(&self, rules: &[(String, Rule)]) -> Result<(), RulesError> {
        if rules.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
        let changed = self.change(&json!({ "delete": { "ids": ids } })).await?;
        if !changed.errors.is_empty() {
            let errors = changed
                .errors
                .into_iter()
                .map(|problem| {
                    let known = rules.iter().find(|(id, _)| problem.id.as_ref() == Some(id));
                    let value = match (known, &problem.value, &problem.id) {
                        (Some((_, rule)), _, _) => rule.value.clone(),
                        (None, Some(value), _) => value.clone(),
                        (None, None, id) => format!("id {}", id.as_deref().unwrap_or("?")),
                    };
                    problem.refusal(value)
                })
                .collect();
            return Err(RulesError::Rejected { errors });
        }
        for (id, rule) in rules {
            let (value, tag) = (&rule.value, rule.tag.as_deref().unwrap_or_default());
            if self.dry_run {
                tracing::info!(id, value, tag, "dry run: would delete rule");
            } else {
                tracing::info!(id, value, tag, "deleted rule");
            }
        }
        Ok(())
    }

    /// POSTs an add or a delete. A client-error status whose body lists rule errors is still an answer
    /// about the rules (X may send invalid rules with 400), so it is read like a success.
    async fn change(&self, body: &serde_json::Value) -> Result<Changed, RulesError> {
        let mut request = self.client.post(&self.endpoint).bearer_auth(self.token.expose()).json(body);
        if self.dry_run {
            request = request.query(&[("dry_run", "true")]);
        }
        let (status, text) = send(request).await?;
        if status.is_success() {
            return parse(&text);
        }
        match serde_json::from_str::<Changed>(&text) {
            Ok(changed) if status.is_client_error() && !is_auth(status) && !changed.errors.is_empty() => Ok(changed),
            _ => Err(failure(status, &text)),
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, String), RulesError> {
    let response = request.send().await?;
    let status = response.status();
    if let Some(redirect) = Redirect::of(status, response.headers(), response.url()) {
        return Err(RulesError::Redirected(redirect));
    }
    let body = crate::http::read_capped(response, MAX_RULES_RESPONSE)
        .await?
        .ok_or(RulesError::TooLarge { status: status.as_u16() })?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn parse<T: DeserializeOwned>(body: &str) -> Result<T, RulesError> {
    Ok(serde_json::from_str(body)?)
}

fn is_auth(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403)
}

/// The error for an error status, with X's own words for it.
fn failure(status: reqwest::StatusCode, body: &str) -> RulesError {
    if is_auth(status) {
        let problem = serde_json::from_str::<Problem>(body).ok();
        let detail = problem.and_then(|p| p.detail.or(p.title)).unwrap_or_else(|| excerpt(body));
        return RulesError::Unauthorized { status: status.as_u16(), detail };
    }
    RulesError::Http { status: status.as_u16(), body: excerpt(body) }
}

/// Enough of a body for a log line: an HTML error page from a proxy can be long.
fn excerpt(body: &str) -> String {
    const MAX: usize = 1024;
    let body = body.trim();
    match body.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &body[..at]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: &str, tag: Option<&str>) -> Rule {
        Rule { value: value.into(), tag: tag.map(Into::into) }
    }

    fn held(rules: &[(&str, Rule)]) -> Vec<(String, Rule)> {
        rules.iter().map(|(id, rule)| (id.to_string(), rule.clone())).collect()
    }

    #[test]
    fn nothing_changes_when_x_holds_exactly_the_configured_rules() {
        let desired = [rule("cat has:images", Some("cats")), rule("dog", None)];
        let current = held(&[("2", desired[1].clone()), ("1", desired[0].clone())]);
        assert_eq!(plan(&current, &desired), (vec![], vec![]));
    }

    #[test]
    fn missing_rules_are_added_and_unconfigured_ones_deleted() {
        let current = held(&[("1", rule("a", None)), ("3", rule("c", None))]);
        let desired = [rule("a", None), rule("d", Some("dee"))];
        assert_eq!(plan(&current, &desired), (vec![rule("d", Some("dee"))], held(&[("3", rule("c", None))])));
    }

    #[test]
    fn a_rule_is_identified_by_its_value_and_its_tag() {
        let current = held(&[("1", rule("dog", Some("dogs"))), ("2", rule("cat", Some("cats")))]);
        let desired = [rule("dog", Some("puppies")), rule("cat", None)];
        let (add, delete) = plan(&current, &desired);
        assert_eq!(add, desired);
        assert_eq!(delete, current);
    }

    #[test]
    fn a_rule_configured_twice_is_added_once() {
        let desired = [rule("d", None), rule("d", None), rule("e", None)];
        assert_eq!(plan(&[], &desired), (vec![rule("d", None), rule("e", None)], vec![]));
    }

    #[test]
    fn a_rule_x_holds_twice_is_kept_once() {
        let current = held(&[("1", rule("a", None)), ("2", rule("a", None))]);
        assert_eq!(plan(&current, &[rule("a", None)]), (vec![], held(&[("2", rule("a", None))])));
    }

    #[test]
    fn an_empty_configuration_deletes_every_rule() {
        let current = held(&[("1", rule("a", None)), ("2", rule("b", Some("bee")))]);
        assert_eq!(plan(&current, &[]), (vec![], current.clone()));
    }

    #[test]
    fn configured_rules_are_read_in_xs_format() {
        let rules = parse_rules_json(
            r#"[{"value":"cat has:images","tag":"cats with images"},{"value":"dog"},{"value":"x","tag":""}]"#,
        )
        .unwrap();
        assert_eq!(rules, [rule("cat has:images", Some("cats with images")), rule("dog", None), rule("x", None)]);
        assert_eq!(parse_rules_json("[]").unwrap(), []);
    }

    #[test]
    fn a_configuration_x_would_not_understand_is_refused_with_the_reason() {
        let empty = parse_rules_json(r#"[{"value":"a"},{"value":"  "}]"#).unwrap_err();
        assert!(empty.to_string().contains("rule 2 has an empty value"), "{empty}");
        let typo = parse_rules_json(r#"[{"value":"a","tags":"t"}]"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field `tags`"), "{typo}");
        assert!(parse_rules_json(r#"{"value":"a"}"#).is_err(), "an object, not an array");
        assert!(parse_rules_json(r#"["a"]"#).is_err(), "bare strings are not X's format");
    }

    #[test]
    fn rules_serialize_as_x_expects_them() {
        let body = json!({ "add": [rule("cat", Some("cats")), rule("dog", None)] });
        assert_eq!(body.to_string(), r#"{"add":[{"tag":"cats","value":"cat"},{"value":"dog"}]}"#);
    }

    #[test]
    fn error_messages_name_the_refused_rules_and_the_token_variable() {
        let rejected = RulesError::Rejected {
            errors: vec![Refusal {
                value: "bad(".into(),
                title: "UnprocessableEntity".into(),
                details: vec!["Rules must contain balanced parentheses".into()],
            }],
        };
        assert_eq!(
            rejected.to_string(),
            "X refused 1 rule(s): `bad(`: UnprocessableEntity (Rules must contain balanced parentheses)"
        );
        let unauthorized = failure(
            reqwest::StatusCode::UNAUTHORIZED,
            r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#,
        );
        assert!(unauthorized.to_string().contains("X_BEARER_TOKEN"), "{unauthorized}");
    }

    #[test]
    fn a_long_error_body_is_cut_for_the_log() {
        let RulesError::Http { status, body } = failure(reqwest::StatusCode::BAD_GATEWAY, &"é".repeat(5000)) else {
            panic!()
        };
        assert_eq!(status, 502);
        assert_eq!(body.chars().count(), 1025);
    }
}
