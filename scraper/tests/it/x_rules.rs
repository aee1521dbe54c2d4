//! Syncing the filtered stream's rules against a stand-in for X that keeps rule state the way X does: one rule
//! per value (a second is a `DuplicateRule`), ids it assigns, `dry_run` that validates without changing
//! anything, and invalid rules refused with their reasons.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scraper::secret::Secret;
use scraper::x::rules::{Rule, RulesError, Synced, sync};
use serde_json::{Value, json};
use testkit::http::{HttpServer, Reply, Request};

const TOKEN: &str = "test-bearer-token";
const PATH: &str = "/2/tweets/search/stream/rules";

fn rule(value: &str, tag: Option<&str>) -> Rule {
    Rule { value: value.into(), tag: tag.map(Into::into) }
}

/// X's rule state, as far as the rules endpoint shows it.
struct FakeX {
    rules: Vec<(String, Rule)>,
    next_id: u64,
    page_size: usize,
}

impl FakeX {
    fn holding(rules: &[Rule]) -> Self {
        let mut x = Self { rules: Vec::new(), next_id: 1_165_037_377_523_306_498, page_size: 1000 };
        for rule in rules {
            let id = x.new_id();
            x.rules.push((id, rule.clone()));
        }
        x
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn id_of(&self, value: &str) -> String {
        self.rules.iter().find(|(_, rule)| rule.value == value).map(|(id, _)| id.clone()).unwrap()
    }

    fn respond(&mut self, request: &Request) -> Reply {
        if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Reply::json(
                401,
                r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#,
            );
        }
        if request.path() != PATH {
            return Reply::json(404, r#"{"title":"Not Found Error","type":"about:blank","status":404}"#);
        }
        match request.method.as_str() {
            "GET" => self.list(request.query("pagination_token")),
            "POST" => {
                let dry_run = request.query("dry_run").as_deref() == Some("true");
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                match (body.get("add"), body.get("delete")) {
                    (Some(add), None) => self.add(serde_json::from_value(add.clone()).unwrap(), dry_run),
                    (None, Some(delete)) => {
                        self.delete(serde_json::from_value(delete["ids"].clone()).unwrap(), dry_run)
                    }
                    _ => Reply::json(400, r#"{"title":"Invalid Request","detail":"add or delete, not both"}"#),
                }
            }
            _ => Reply::json(405, "{}"),
        }
    }

    /// Pages use the index of their first rule as the token.
    fn list(&self, token: Option<String>) -> Reply {
        let from: usize = token.map_or(0, |token| token.parse().unwrap());
        let page: Vec<Value> = self
            .rules
            .iter()
            .skip(from)
            .take(self.page_size)
            .map(|(id, rule)| {
                let mut listed = json!({ "id": id, "value": rule.value });
                if let Some(tag) = &rule.tag {
                    listed["tag"] = json!(tag);
                }
                listed
            })
            .collect();
        let mut meta = json!({ "sent": "2026-11-25T08:00:00.000Z", "result_count": page.len() });
        if from + page.len() < self.rules.len() {
            meta["next_token"] = json!((from + page.len()).to_string());
        }
        let body = if page.is_empty() { json!({ "meta": meta }) } else { json!({ "data": page, "meta": meta }) };
        Reply::json(200, &body.to_string())
    }

    /// Like X: an unbalanced parenthesis is invalid, a value X holds is a duplicate, and if any rule is
    /// invalid none is created.
    fn add(&mut self, rules: Vec<Rule>, dry_run: bool) -> Reply {
        let mut errors = Vec::new();
        let mut created = Vec::new();
        let mut invalid = 0;
        for rule in rules {
            if rule.value.matches('(').count() != rule.value.matches(')').count() {
                invalid += 1;
                errors.push(json!({
                    "value": rule.value,
                    "details": ["Rules must contain balanced parentheses"],
                    "title": "UnprocessableEntity",
                    "type": "https://api.twitter.com/2/problems/invalid-rules",
                }));
            } else if let Some((id, _)) = self.rules.iter().find(|(_, held)| held.value == rule.value) {
                errors.push(json!({
                    "value": rule.value,
                    "id": id,
                    "title": "DuplicateRule",
                    "type": "https://api.twitter.com/2/problems/duplicate-rules",
                }));
            } else {
                created.push((self.new_id(), rule));
            }
        }
        if invalid > 0 {
            created.clear();
        }
        let data: Vec<Value> =
            created.iter().map(|(id, rule)| json!({ "id": id, "value": rule.value, "tag": rule.tag })).collect();
        let summary = json!({
            "created": created.len(),
            "not_created": errors.len(),
            "valid": data.len(),
            "invalid": invalid,
        });
        if !dry_run {
            self.rules.extend(created);
        }
        let mut body = json!({ "meta": { "sent": "2026-11-25T08:00:00.000Z", "summary": summary } });
        if !data.is_empty() {
            body["data"] = json!(data);
        }
        if !errors.is_empty() {
            body["errors"] = json!(errors);
        }
        Reply::json(200, &body.to_string())
    }

    fn delete(&mut self, ids: Vec<String>, dry_run: bool) -> Reply {
        let deleted = ids.iter().filter(|id| self.rules.iter().any(|(held, _)| held == *id)).count();
        if !dry_run {
            self.rules.retain(|(id, _)| !ids.contains(id));
        }
        let summary = json!({ "deleted": deleted, "not_deleted": ids.len() - deleted });
        Reply::json(200, &json!({ "meta": { "sent": "2026-11-25T08:00:00.000Z", "summary": summary } }).to_string())
    }
}

/// A stand-in for X holding `rules`, and a handle on its state.
async fn fake_x(rules: &[Rule]) -> (HttpServer, Arc<Mutex<FakeX>>) {
    let state = Arc::new(Mutex::new(FakeX::holding(rules)));
    let handle = state.clone();
    let server = HttpServer::with(move |request| handle.lock().unwrap().respond(request)).await.unwrap();
    (server, state)
}

fn client() -> reqwest::Client {
    scraper::http::client(Duration::from_secs(5)).unwrap()
}

async fn sync_with(server: &HttpServer, desired: &[Rule], dry_run: bool) -> Result<Synced, RulesError> {
    sync(&client(), &server.url(), &Secret::new(TOKEN), desired, dry_run).await
}

fn held(state: &Mutex<FakeX>) -> Vec<Rule> {
    state.lock().unwrap().rules.iter().map(|(_, rule)| rule.clone()).collect()
}

fn json_body(request: &Request) -> Value {
    assert_eq!(request.header("content-type"), Some("application/json"), "{request:?}");
    serde_json::from_slice(&request.body).unwrap()
}

/// (method, path, dry_run query) of each request, after checking that every one carried the token.
fn calls(server: &HttpServer) -> Vec<(String, String, Option<String>)> {
    server
        .requests()
        .iter()
        .map(|request| {
            assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
            (request.method.clone(), request.path().to_owned(), request.query("dry_run"))
        })
        .collect()
}

fn call(method: &str, dry_run: Option<&str>) -> (String, String, Option<String>) {
    (method.to_owned(), PATH.to_owned(), dry_run.map(Into::into))
}

fn start() -> [Rule; 3] {
    [rule("a", None), rule("b", Some("dogs")), rule("c", Some("cats"))]
}

fn desired() -> [Rule; 3] {
    [rule("a", None), rule("b", Some("puppies")), rule("d has:images", Some("dee"))]
}

#[tokio::test]
async fn sync_adds_what_x_lacks_and_deletes_what_is_not_configured() {
    let (server, state) = fake_x(&start()).await;
    let (id_b, id_c) = {
        let x = state.lock().unwrap();
        (x.id_of("b"), x.id_of("c"))
    };

    let synced = sync_with(&server, &desired(), false).await.unwrap();

    assert_eq!(
        synced,
        Synced {
            added: vec![rule("b", Some("puppies")), rule("d has:images", Some("dee"))],
            deleted: vec![(id_b.clone(), rule("b", Some("dogs"))), (id_c.clone(), rule("c", Some("cats")))],
            kept: 1,
        }
    );
    // `b` changed its tag, and X holds one rule per value: the old `b` must go before the new one can come.
    assert_eq!(calls(&server), [call("GET", None), call("POST", None), call("POST", None)]);
    let requests = server.requests();
    assert_eq!(json_body(&requests[1]), json!({ "delete": { "ids": [id_b, id_c] } }));
    assert_eq!(
        json_body(&requests[2]),
        json!({ "add": [{ "value": "b", "tag": "puppies" }, { "value": "d has:images", "tag": "dee" }] })
    );
    assert_eq!(held(&state), desired());
}

#[tokio::test]
async fn a_second_sync_only_reads_the_rules() {
    let (server, state) = fake_x(&start()).await;
    sync_with(&server, &desired(), false).await.unwrap();
    let before = server.requests().len();

    let synced = sync_with(&server, &desired(), false).await.unwrap();

    assert_eq!(synced, Synced { kept: 3, ..Synced::default() });
    assert_eq!(calls(&server)[before..], [call("GET", None)]);
    assert_eq!(held(&state), desired());
}

#[tokio::test]
async fn new_rules_go_in_before_unconfigured_ones_are_deleted() {
    let (server, state) = fake_x(&[rule("a", None), rule("c", None)]).await;
    let id_c = state.lock().unwrap().id_of("c");

    sync_with(&server, &[rule("a", None), rule("d", None), rule("d", None)], false).await.unwrap();

    assert_eq!(calls(&server), [call("GET", None), call("POST", None), call("POST", None)]);
    let requests = server.requests();
    assert_eq!(json_body(&requests[1]), json!({ "add": [{ "value": "d" }] }), "a rule configured twice, added once");
    assert_eq!(json_body(&requests[2]), json!({ "delete": { "ids": [id_c] } }));
    assert_eq!(held(&state), [rule("a", None), rule("d", None)]);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_reports_what_a_real_run_does() {
    let (server, state) = fake_x(&start()).await;

    let dry = sync_with(&server, &desired(), true).await.unwrap();

    assert_eq!(held(&state), start(), "a dry run leaves X's rules alone");
    assert_eq!(calls(&server), [call("GET", None), call("POST", Some("true")), call("POST", Some("true"))]);
    // X, still holding the old `b`, calls the re-tagged `b` a duplicate; that is no reason to fail a dry run.
    let real = sync_with(&server, &desired(), false).await.unwrap();
    assert_eq!(dry, real);
    assert_eq!(held(&state), desired());
}

#[tokio::test]
async fn a_rules_response_past_the_bound_is_not_read_whole() {
    let huge = format!(r#"{{"data":[{{"id":"1","value":"{}"}}]}}"#, "x".repeat(scraper::x::rules::MAX_RULES_RESPONSE));
    let server = HttpServer::scripted(vec![Reply::json(200, &huge)], Reply::json(500, "{}")).await.unwrap();

    let error = sync(&client(), &server.url(), &Secret::new("t"), &desired(), false).await.unwrap_err();

    assert!(matches!(error, RulesError::TooLarge { status: 200 }), "{error:?}");
    assert!(error.to_string().contains("bytes"), "{error}");
}

#[tokio::test]
async fn a_refused_token_stops_the_sync_with_a_message_naming_x_bearer_token() {
    let (server, state) = fake_x(&start()).await;

    let error = sync(&client(), &server.url(), &Secret::new("revoked-token"), &desired(), false).await.unwrap_err();

    let RulesError::Unauthorized { status: 401, ref detail } = error else { panic!("{error:?}") };
    assert_eq!(detail, "Unauthorized");
    let message = error.to_string();
    assert!(message.contains("X_BEARER_TOKEN"), "{message}");
    assert!(!message.contains("revoked-token") && !format!("{error:?}").contains("revoked-token"));
    assert_eq!(server.requests().len(), 1, "nothing after the refused GET");
    assert_eq!(held(&state), start());
}

#[tokio::test]
async fn a_403_for_the_apps_access_level_is_unauthorized_too() {
    let server = HttpServer::scripted(
        vec![Reply::json(
            403,
            r#"{"client_id":"1","title":"Client Forbidden","reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden","detail":"This request must be made using an approved developer account."}"#,
        )],
        Reply::json(500, "{}"),
    )
    .await
    .unwrap();

    let error = sync_with(&server, &desired(), false).await.unwrap_err();

    let RulesError::Unauthorized { status: 403, ref detail } = error else { panic!("{error:?}") };
    assert_eq!(detail, "This request must be made using an approved developer account.");
}

#[tokio::test]
async fn an_invalid_rule_is_rejected_with_its_value_and_details_before_anything_is_deleted() {
    let (server, state) = fake_x(&[rule("a", None), rule("c", None)]).await;

    let error = sync_with(&server, &[rule("a", None), rule("bad(", Some("oops"))], false).await.unwrap_err();

    let RulesError::Rejected { errors } = &error else { panic!("{error:?}") };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].value, "bad(");
    assert_eq!(errors[0].title, "UnprocessableEntity");
    assert_eq!(errors[0].details, ["Rules must contain balanced parentheses"]);
    let message = error.to_string();
    assert!(message.contains("`bad(`") && message.contains("balanced parentheses"), "{message}");
    assert_eq!(calls(&server), [call("GET", None), call("POST", None)], "no delete after a refused add");
    assert_eq!(held(&state), [rule("a", None), rule("c", None)]);
}

#[tokio::test]
async fn rule_errors_sent_with_a_400_are_a_rejection_too() {
    let server = HttpServer::scripted(
        vec![
            Reply::json(200, r#"{"meta":{"sent":"2026-11-25T08:00:00.000Z","result_count":0}}"#),
            Reply::json(
                400,
                r#"{"meta":{"summary":{"created":0,"not_created":1,"valid":0,"invalid":1}},"errors":[{"value":"bad(","details":["Rules must contain balanced parentheses"],"title":"UnprocessableEntity","type":"https://api.twitter.com/2/problems/invalid-rules"}]}"#,
            ),
        ],
        Reply::json(500, "{}"),
    )
    .await
    .unwrap();

    let error = sync_with(&server, &[rule("bad(", None)], false).await.unwrap_err();

    let RulesError::Rejected { errors } = &error else { panic!("{error:?}") };
    assert_eq!(errors[0].value, "bad(");
}

#[tokio::test]
async fn rules_are_read_across_pages() {
    let (server, state) = fake_x(&start()).await;
    state.lock().unwrap().page_size = 2;

    let synced = sync_with(&server, &start(), false).await.unwrap();

    assert_eq!(synced, Synced { kept: 3, ..Synced::default() });
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "two pages and no change");
    assert_eq!(requests[0].query("pagination_token"), None);
    assert_eq!(requests[1].query("pagination_token").as_deref(), Some("2"));
}

#[tokio::test]
async fn an_empty_stream_gets_every_configured_rule() {
    let (server, state) = fake_x(&[]).await;

    let synced = sync_with(&server, &desired(), false).await.unwrap();

    assert_eq!(synced.added, desired());
    assert_eq!(synced.kept, 0);
    assert_eq!(calls(&server), [call("GET", None), call("POST", None)]);
    assert_eq!(held(&state), desired());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_http_errors_with_xs_body() {
    let problem = r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#;
    let server =
        HttpServer::scripted(vec![Reply::json(429, problem)], Reply::json(503, "upstream down")).await.unwrap();

    let error = sync_with(&server, &desired(), false).await.unwrap_err();
    let RulesError::Http { status: 429, body } = error else { panic!("{error:?}") };
    assert_eq!(body, problem);

    let error = sync_with(&server, &desired(), false).await.unwrap_err();
    assert!(matches!(error, RulesError::Http { status: 503, ref body } if body == "upstream down"), "{error:?}");
}

#[tokio::test]
async fn a_listing_in_another_shape_is_a_parse_error() {
    let server =
        HttpServer::scripted(vec![Reply::json(200, r#"{"data":[{"value":"no id"}]}"#)], Reply::json(500, "{}"))
            .await
            .unwrap();

    let error = sync_with(&server, &desired(), false).await.unwrap_err();

    assert!(matches!(error, RulesError::Parse(_)), "{error:?}");
}
