//! The length limit of indexed text, and what becomes of a value too long for its index. Postgres refuses a whole row whose index entry exceeds
//! its page-derived limit (SQLSTATE 54000): left alone, one overlong hashtag would cost its post the row and
//! turn the whole record into a dead letter.
//!
//! A value is never cut: it is left out whole (an array element, or a nullable scalar, which becomes NULL),
//! or, when it is the row's key or required, the row is not written. Either way the record's `raw` JSON
//! keeps the value as it came, and [`LeftOut`] counts what was left out. Which columns, and which of the two,
//! each entity's description says (`entity::Described`); the `index_limits` test holds them to the migrated
//! schema: every index over text has an entry there or a reason in the test.

use std::collections::BTreeMap;

use entity::Described;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityName, IdenStatic, Value};

/// The most UTF-8 bytes a value (or array element) of an indexed text column may have; exactly this many is
/// accepted.
///
/// Postgres caps an index entry at about a third of an 8 kB page: 2704 bytes for a btree (version 4), 2712
/// for a GIN entry (long values are compressed first, but only when they compress). About a third of that
/// leaves room for an expression index's `lower()` growing the string (a few characters lower-case to more UTF-8
/// bytes: U+023A `Ⱥ`, 2 bytes, becomes U+2C65 `ⱥ`, 3 bytes, so 1024 bytes can become 1536) and for the
/// entry's header and other columns. Real hashtags, mentions and usernames are tens of bytes: a value past
/// this is junk or an attack, not data worth an index.
pub const INDEXED_TEXT_MAX_BYTES: usize = 1024;

pub use entity::description::TooLong;

/// One column whose text is in an index, as every entity's description names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indexed {
    pub table: &'static str,
    pub column: &'static str,
    pub too_long: TooLong,
}

/// Every (table, column) whose text an index holds, directly or through an expression such as `lower()`:
/// the `indexed` of each entity's description (`entity::Described`).
pub fn indexed() -> Vec<Indexed> {
    entity::tables()
        .into_iter()
        .flat_map(|facts| {
            facts.indexed.into_iter().map(move |(column, too_long)| Indexed { table: facts.table, column, too_long })
        })
        .collect()
}

/// Values left out and rows dropped, by (table, column).
pub type LeftOut = BTreeMap<(&'static str, &'static str), u64>;

/// Applies the description's indexed columns to `rows` of one table (each with the index of its record,
/// kept), in order: drops the rows whose key is too long, then leaves out the too-long values of the rest,
/// counting each in `left_out`. Rows with nothing too long are not touched.
pub(crate) fn fit<R: Modeled>(rows: &mut Vec<R>, left_out: &mut LeftOut)
where
    <R::Model as ActiveModelTrait>::Entity: Described,
{
    let table = <R::Model as ActiveModelTrait>::Entity::default().table_name();
    let entries = || <<R::Model as ActiveModelTrait>::Entity as Described>::DESCRIPTION.indexed.iter();
    // Drops first, so that a dropped row's other values are not also counted as left out.
    for entry in entries().filter(|entry| entry.too_long == TooLong::DropRow) {
        let before = rows.len();
        rows.retain(|row| !held(&row.model().get(entry.column)).is_some_and(too_long_in));
        count(left_out, table, entry.column.as_str(), (before - rows.len()) as u64);
    }
    for entry in entries().filter(|entry| entry.too_long == TooLong::LeaveOut) {
        for row in rows.iter_mut().map(Modeled::model_mut) {
            // `get` copies the value (the trait lends no reference), but only a row with a value too long is
            // rebuilt and set.
            let (ActiveValue::Set(value) | ActiveValue::Unchanged(value)) = row.get(entry.column) else { continue };
            if !too_long_in(&value) {
                continue;
            }
            let (fitted, removed) = match value {
                Value::Array(ty, Some(items)) => {
                    let before = items.len();
                    let kept: Vec<Value> = items.into_iter().filter(|item| !too_long_in(item)).collect();
                    let removed = before - kept.len();
                    (Value::Array(ty, Some(Box::new(kept))), removed)
                }
                _ => (Value::String(None), 1),
            };
            row.set(entry.column, fitted);
            count(left_out, table, entry.column.as_str(), removed as u64);
        }
    }
}

/// A row with its active model: a bare `(record index, model)` or a [`crate::table::Row`].
pub(crate) trait Modeled {
    type Model: ActiveModelTrait;
    fn model(&self) -> &Self::Model;
    fn model_mut(&mut self) -> &mut Self::Model;
}

impl<A: ActiveModelTrait> Modeled for (usize, A) {
    type Model = A;
    fn model(&self) -> &A {
        &self.1
    }
    fn model_mut(&mut self) -> &mut A {
        &mut self.1
    }
}

/// The value a row writes to a column, if any.
fn held(value: &ActiveValue<Value>) -> Option<&Value> {
    match value {
        ActiveValue::Set(value) | ActiveValue::Unchanged(value) => Some(value),
        ActiveValue::NotSet => None,
    }
}

/// Whether `value` is a string, or an array holding one, longer than the limit.
fn too_long_in(value: &Value) -> bool {
    match value {
        Value::String(Some(text)) => text.len() > INDEXED_TEXT_MAX_BYTES,
        Value::Array(_, Some(items)) => items.iter().any(too_long_in),
        _ => false,
    }
}

fn count(left_out: &mut LeftOut, table: &'static str, column: &'static str, n: u64) {
    if n > 0 {
        *left_out.entry((table, column)).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use entity::{
        instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_posts, instagram_profiles,
        mastodon_statuses, twitter_data, twitter_users,
    };
    use sea_orm::ActiveValue::{NotSet, Set};
    use sea_orm::ColumnTrait;

    use super::*;

    fn text(bytes: usize) -> String {
        "x".repeat(bytes)
    }

    fn tweet(hashtags: Vec<String>, mentions: Vec<String>) -> twitter_data::ActiveModel {
        twitter_data::ActiveModel { hashtags: Set(hashtags), mentions: Set(mentions), ..Default::default() }
    }

    fn fitted<A: ActiveModelTrait>(rows: Vec<A>) -> (Vec<(usize, A)>, LeftOut)
    where
        A::Entity: Described,
    {
        let mut rows = rows.into_iter().enumerate().collect();
        let mut left_out = LeftOut::new();
        fit(&mut rows, &mut left_out);
        (rows, left_out)
    }

    #[test]
    fn an_element_of_exactly_the_limit_is_kept_and_one_byte_more_is_left_out() {
        let (rows, left_out) = fitted(vec![tweet(vec![text(1024), text(1025)], vec![])]);
        assert_eq!(rows[0].1.hashtags, Set(vec![text(1024)]));
        assert_eq!(left_out, LeftOut::from([(("twitter_data", "hashtags"), 1)]));
    }

    #[test]
    fn the_limit_counts_utf8_bytes_not_characters() {
        let wide = "東".repeat(342); // 342 characters, 1026 bytes
        let fits = format!("{}a", "東".repeat(341)); // 1024 bytes
        let (rows, left_out) = fitted(vec![tweet(vec![wide, fits.clone()], vec![])]);
        assert_eq!(rows[0].1.hashtags, Set(vec![fits]));
        assert_eq!(left_out[&("twitter_data", "hashtags")], 1);
    }

    #[test]
    fn the_other_elements_keep_their_order_and_the_other_columns_are_untouched() {
        let row = twitter_data::ActiveModel {
            tweet_id: Set(7),
            text: Set(text(5000)), // not indexed
            hashtags: Set(vec!["a".into(), text(2000), "b".into(), text(3000), "c".into()]),
            mentions: Set(vec!["m".into(), text(1025)]),
            urls: Set(vec![text(5000)]), // not indexed
            ..Default::default()
        };
        let (rows, left_out) = fitted(vec![row]);
        let row = &rows[0].1;
        assert_eq!(row.hashtags, Set(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(row.mentions, Set(vec!["m".into()]));
        assert_eq!((&row.tweet_id, &row.text, &row.urls), (&Set(7), &Set(text(5000)), &Set(vec![text(5000)])));
        assert_eq!(left_out, LeftOut::from([(("twitter_data", "hashtags"), 2), (("twitter_data", "mentions"), 1)]));
    }

    #[test]
    fn rows_with_nothing_too_long_are_left_as_they_are() {
        let short = twitter_data::ActiveModel {
            hashtags: sea_orm::ActiveValue::Unchanged(vec!["a".into(), text(1024)]),
            mentions: NotSet,
            ..Default::default()
        };
        let (rows, left_out) = fitted(vec![short.clone(), tweet(vec![], vec![])]);
        assert_eq!(rows[0].1, short, "Unchanged stays Unchanged, NotSet stays NotSet");
        assert_eq!(rows[1].1, tweet(vec![], vec![]));
        assert!(left_out.is_empty());
    }

    #[test]
    fn mastodon_tags_and_mentions_are_fitted_like_the_tweets() {
        let status = mastodon_statuses::ActiveModel {
            id: Set(1),
            tags: Set(vec![text(1025), "rust".into()]),
            mentions: Set(vec![text(1025), text(1025)]),
            ..Default::default()
        };
        let (rows, left_out) = fitted(vec![status]);
        assert_eq!(rows[0].1.tags, Set(vec!["rust".into()]));
        assert_eq!(rows[0].1.mentions, Set(vec![]));
        assert_eq!(
            left_out,
            LeftOut::from([(("mastodon_statuses", "mentions"), 2), (("mastodon_statuses", "tags"), 1)])
        );
    }

    #[test]
    fn a_nullable_scalar_too_long_becomes_null() {
        let profile = |user_id, username: Option<String>| instagram_profiles::ActiveModel {
            user_id: Set(user_id),
            username: Set(username),
            full_name: Set(Some(text(3000))),
            ..Default::default()
        };
        let rows = vec![profile(1, Some(text(1025))), profile(2, Some(text(1024))), profile(3, None)];
        let (rows, left_out) = fitted(rows);
        assert_eq!(rows, vec![(0, profile(1, None)), (1, profile(2, Some(text(1024)))), (2, profile(3, None))]);
        assert_eq!(left_out, LeftOut::from([(("instagram_profiles", "username"), 1)]));
    }

    #[test]
    fn a_row_keyed_by_a_too_long_value_is_dropped_and_the_others_keep_their_order() {
        let user = |user_id, username: String| twitter_users::ActiveModel {
            user_id: Set(user_id),
            username: Set(username),
            ..Default::default()
        };
        let rows = vec![user(1, "a".into()), user(2, text(1025)), user(3, text(1024)), user(4, text(9000))];
        let (rows, left_out) = fitted(rows);
        assert_eq!(rows, vec![(0, user(1, "a".into())), (2, user(3, text(1024)))]);
        assert_eq!(left_out, LeftOut::from([(("twitter_users", "username"), 2)]));
    }

    #[test]
    fn hashtags_too_long_are_dropped_from_both_instagram_tables() {
        let long = "ⱥ".repeat(400);
        let hashtag = |name: &str| instagram_hashtags::ActiveModel { name: Set(name.into()), ..Default::default() };
        let link = |name: &str| instagram_post_hashtags::ActiveModel { media_id: Set(5), hashtag: Set(name.into()) };
        let mut hashtags = vec![(3, hashtag("coffee")), (3, hashtag(&long))];
        let mut links = vec![(3, link(&long)), (3, link("coffee"))];
        let mut left_out = LeftOut::new();
        fit(&mut hashtags, &mut left_out);
        fit(&mut links, &mut left_out);
        assert_eq!(hashtags, vec![(3, hashtag("coffee"))], "the record's index stays with its rows");
        assert_eq!(links, vec![(3, link("coffee"))]);
        let expected = [(("instagram_hashtags", "name"), 1), (("instagram_post_hashtags", "hashtag"), 1)];
        assert_eq!(left_out, LeftOut::from(expected));
    }

    #[test]
    fn left_out_values_add_up_over_calls() {
        let mut left_out = LeftOut::from([(("twitter_data", "hashtags"), 5)]);
        let mut rows = vec![(0, tweet(vec![text(1025)], vec![])), (1, tweet(vec![text(1025)], vec![]))];
        fit(&mut rows, &mut left_out);
        assert_eq!(left_out, LeftOut::from([(("twitter_data", "hashtags"), 7)]));
    }

    #[test]
    fn a_table_without_an_entry_is_untouched() {
        let comment = instagram_comments::ActiveModel {
            comment_id: Set(1),
            author_username: Set(Some(text(5000))),
            text: Set(text(5000)),
            ..Default::default()
        };
        let (rows, left_out) = fitted(vec![comment.clone()]);
        assert_eq!(rows, vec![(0, comment)]);
        assert!(left_out.is_empty());
    }

    /// Checks each entry of `A`'s table against the entity: the column exists, is text or text[], and a
    /// value left out can be NULL.
    fn check_entries<A: ActiveModelTrait>() -> usize
    where
        A::Entity: Described,
    {
        let table = A::Entity::default().table_name();
        let mut checked = 0;
        for entry in <A::Entity as Described>::DESCRIPTION.indexed {
            let def = entry.column.def();
            let column_type = def.get_column_type();
            let is_array = matches!(column_type, sea_orm::ColumnType::Array(_));
            let inner = match column_type {
                sea_orm::ColumnType::Array(inner) => inner.as_ref(),
                scalar => scalar,
            };
            assert!(
                matches!(inner, sea_orm::ColumnType::Text | sea_orm::ColumnType::String(_)),
                "{table}.{} is not text",
                entry.column.as_str()
            );
            if entry.too_long == TooLong::LeaveOut && !is_array {
                assert!(def.is_null(), "{table}.{} is left out as NULL but is NOT NULL", entry.column.as_str());
            }
            checked += 1;
        }
        checked
    }

    #[test]
    fn every_entry_is_a_text_column_of_its_entity_and_leaving_out_a_scalar_means_null() {
        struct Check(usize);
        impl entity::EachTable for Check {
            fn table<E: Described>(&mut self) {
                self.0 += check_entries::<E::ActiveModel>();
            }
        }
        let mut check = Check(0);
        entity::for_each_table(&mut check);
        assert_eq!(check.0, indexed().len(), "an entry names a table this test does not check");
    }

    #[test]
    fn a_shortcode_too_long_drops_the_post() {
        let post = |media_id, shortcode: String| instagram_posts::ActiveModel {
            media_id: Set(media_id),
            shortcode: Set(shortcode),
            ..Default::default()
        };
        let (rows, left_out) = fitted(vec![post(1, "A".repeat(1025)), post(2, "B".into())]);
        assert_eq!(rows, vec![(1, post(2, "B".into()))]);
        assert_eq!(left_out, LeftOut::from([(("instagram_posts", "shortcode"), 1)]));
    }
}
