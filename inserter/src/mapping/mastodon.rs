//! Mastodon statuses (`mastodon.statuses`: the data of a streaming `update` event, which is the REST API's
//! Status entity) to a `mastodon_statuses` row. A reblog is one row that points at the reblogged status
//! (`reblog_of_id`); the reblogged status itself stays in `raw`.

use chrono::{DateTime, Utc};
use entity::{mastodon_status_deletions, mastodon_statuses};
use sea_orm::ActiveValue::{NotSet, Set};
use serde::Deserialize;

use super::json::{Id, null_as_default, parse_object, plain_text};
use contract::Topic;

use super::{DecodeError, Mapping, html};
use crate::record::{ConsumedRecord, SCRAPED_AT_SKEW};
use crate::table::detach_raw;
use crate::tables::Tables;

/// The Mastodon mapping, registered in [`super::MAPPINGS`].
pub(crate) static STATUSES: Statuses = Statuses;

pub(crate) struct Statuses;

impl Mapping for Statuses {
    fn topic(&self) -> &'static Topic {
        &contract::topic::MASTODON_STATUSES
    }

    /// `sse` is the scraper's generic SSE source, `sse.mastodon` and the like its named ones.
    fn reads_source(&self, source: &str) -> bool {
        source.starts_with(contract::source::SSE_PREFIX)
    }

    /// A `delete` event is a deletion; anything else a status (`update`, `status.update`, or a record without
    /// the header, from before it existed). The status is read from the payload as it is, which becomes
    /// `raw`; only a payload that fails is parsed into a tree, to say why.
    fn map(
        &self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        payload: &[u8],
        tables: &mut Tables,
    ) -> Result<(), DecodeError> {
        let instance = instance_header(record)?;
        if record.header(contract::header::SSE_EVENT) == Some(contract::event::MASTODON_DELETE) {
            let Some(instance) = instance else {
                return Err(DecodeError::Shape(format!(
                    "a deletion needs its `{}` header: the id is that instance's",
                    contract::header::INSTANCE
                )));
            };
            let deletion = deletion(payload, instance, record.source(), scraped_at)?;
            tables.mastodon_status_deletions.push(index, deletion, None);
            return Ok(());
        }
        let fast = plain_text(payload).and_then(|text| Some((serde_json::from_str::<Status>(text).ok()?, text)));
        let (model, raw) = match fast {
            Some((status, text)) => (status.into_row(scraped_at, instance)?, Some(text.into())),
            None => detach_raw(map_from(payload, scraped_at, instance)?),
        };
        tables.mastodon_statuses.push(index, model, raw);
        Ok(())
    }
}

/// Longest instance name taken: a host name (253) with a port, and room to spare; the column's CHECK.
const MAX_INSTANCE: usize = 300;

/// The `instance` header, checked: a value Postgres can store and the key's CHECK takes.
fn instance_header(record: &ConsumedRecord) -> Result<Option<&str>, DecodeError> {
    let Some(instance) = record.header(contract::header::INSTANCE) else { return Ok(None) };
    if instance.is_empty() || instance.len() > MAX_INSTANCE || instance.chars().any(char::is_control) {
        let shown: String = instance.chars().take(80).collect();
        return Err(DecodeError::invalid("header instance", shown.escape_debug().to_string(), "a host name"));
    }
    Ok(Some(instance))
}

/// The host of a status's `uri` (its origin): the instance of a record from before the `instance` header,
/// when the serving instance was not recorded.
fn uri_host(uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.to_lowercase();
    (!host.is_empty() && host.len() <= MAX_INSTANCE && !host.chars().any(char::is_control)).then_some(host)
}

/// A `delete` event's data: the status id, as digits or a JSON string.
pub fn deletion(
    payload: &[u8],
    instance: &str,
    source: &str,
    scraped_at: DateTime<Utc>,
) -> Result<mastodon_status_deletions::ActiveModel, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let id = contract::id::from_json(&value)
        .map_err(|_| DecodeError::invalid("deleted status id", value.to_string(), "a positive 64-bit id"))?;
    Ok(mastodon_status_deletions::ActiveModel {
        instance: Set(instance.to_owned()),
        status_id: Set(id),
        deleted_at: Set(scraped_at),
        source: Set(source.to_owned()),
        ingested_at: NotSet,
    })
}

/// Maps one status of a record without the `instance` header; `scraped_at` comes from the record's headers.
pub fn map(payload: &[u8], scraped_at: DateTime<Utc>) -> Result<mastodon_statuses::ActiveModel, DecodeError> {
    map_from(payload, scraped_at, None)
}

fn map_from(
    payload: &[u8],
    scraped_at: DateTime<Utc>,
    instance: Option<&str>,
) -> Result<mastodon_statuses::ActiveModel, DecodeError> {
    let raw = parse_object(payload)?;
    let status = Status::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let mut row = status.into_row(scraped_at, instance)?;
    row.raw = Set(raw);
    Ok(row)
}

/// The fields stored in typed columns; everything else is kept in `raw` only.
#[derive(Deserialize)]
struct Status {
    id: Id,
    uri: String,
    url: Option<String>,
    created_at: DateTime<Utc>,
    account: Account,
    content: String,
    #[serde(default, deserialize_with = "null_as_default")]
    spoiler_text: String,
    visibility: String,
    language: Option<String>,
    sensitive: Option<bool>,
    in_reply_to_id: Option<Id>,
    reblog: Option<Reblogged>,
    #[serde(default, deserialize_with = "null_as_default")]
    tags: Vec<Tag>,
    #[serde(default, deserialize_with = "null_as_default")]
    mentions: Vec<Mention>,
    reblogs_count: Option<i64>,
    favourites_count: Option<i64>,
    replies_count: Option<i64>,
    edited_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Account {
    id: Id,
    username: String,
    acct: String,
}

/// Of a reblogged status only its id is a column.
#[derive(Deserialize)]
struct Reblogged {
    id: Id,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

#[derive(Deserialize)]
struct Mention {
    acct: String,
}

impl Status {
    fn into_row(
        self,
        scraped_at: DateTime<Utc>,
        instance: Option<&str>,
    ) -> Result<mastodon_statuses::ActiveModel, DecodeError> {
        let instance = match instance {
            Some(instance) => instance.to_owned(),
            None => uri_host(&self.uri).ok_or_else(|| {
                DecodeError::invalid(
                    "uri",
                    self.uri.chars().take(200).collect::<String>(),
                    "a URL with a host (the record has no `instance` header)",
                )
            })?,
        };
        // Servers send a tag as its author typed it (`#RustLang`); lower-cased, `tags @> '{rustlang}'` finds
        // every spelling.
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in self.tags {
            let name = tag.name.to_lowercase();
            if !tags.contains(&name) {
                tags.push(name);
            }
        }
        Ok(mastodon_statuses::ActiveModel {
            instance: Set(instance),
            id: Set(self.id.0),
            url: Set(self.url),
            uri: Set(self.uri),
            created_at: Set(self.created_at),
            account_id: Set(self.account.id.0),
            account_acct: Set(self.account.acct),
            account_username: Set(self.account.username),
            content_text: Set(html::to_text(&self.content)),
            content_html: Set(self.content),
            spoiler_text: Set(self.spoiler_text),
            visibility: Set(self.visibility),
            language: Set(self.language),
            sensitive: Set(self.sensitive),
            in_reply_to_id: Set(self.in_reply_to_id.map(|id| id.0)),
            reblog_of_id: Set(self.reblog.map(|reblog| reblog.id.0)),
            tags: Set(tags),
            mentions: Set(self.mentions.into_iter().map(|m| m.acct).collect()),
            reblogs_count: Set(self.reblogs_count),
            favourites_count: Set(self.favourites_count),
            replies_count: Set(self.replies_count),
            edited_at: Set(self.edited_at.map(|at| edited_no_later_than_seen(at, scraped_at))),
            deleted_at: NotSet,
            raw: NotSet,
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        })
    }
}

/// An edit cannot be later than the scrape that saw it. `edited_at` is the row's version (a newer version is
/// never replaced by an older one), so one far ahead, from a hostile instance or whoever writes the topic,
/// would keep every later edit out for ever: it counts as at most the scrape's time, plus the clock skew
/// allowed between the instance and the scraper. `raw` keeps what the instance sent.
fn edited_no_later_than_seen(edited_at: DateTime<Utc>, scraped_at: DateTime<Utc>) -> DateTime<Utc> {
    edited_at.min(scraped_at + SCRAPED_AT_SKEW)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};

    use super::{SCRAPED_AT_SKEW, edited_no_later_than_seen, uri_host};

    #[test]
    fn an_edit_counts_as_no_later_than_the_scrape_that_saw_it() {
        let scraped = Utc::now();
        let earlier = scraped - TimeDelta::hours(2);
        assert_eq!(edited_no_later_than_seen(earlier, scraped), earlier);
        let skewed = scraped + TimeDelta::minutes(1);
        assert_eq!(edited_no_later_than_seen(skewed, scraped), skewed, "within the allowed skew");
        let year_ahead = scraped + TimeDelta::days(365);
        assert_eq!(edited_no_later_than_seen(year_ahead, scraped), scraped + SCRAPED_AT_SKEW);
    }

    #[test]
    fn a_uri_host_is_its_authority_without_user_lower_cased() {
        assert_eq!(uri_host("https://Mastodon.Social/users/a/statuses/1").as_deref(), Some("mastodon.social"));
        assert_eq!(uri_host("https://u@host.example:8443/x").as_deref(), Some("host.example:8443"));
        assert_eq!(uri_host("tag:example.org,2024:1"), None);
        assert_eq!(uri_host("https:///x"), None);
    }
}
