//! The upsert rule of every data table, and the rule itself as one type: which columns a newer scrape
//! replaces, which keep their known value when the new one is NULL, which are set once and then kept, and
//! which are bookkeeping. The rule gives the `ON CONFLICT` clause and the merge of one batch's duplicates,
//! so that a batch holding several scrapes of a row ends as if they had been written one by one.
//!
//! A row changes only when a newer scrape brings a different value (or a set-once column learns its value),
//! so a replay, or an identical re-scrape, writes nothing and emits no change event. A row whose
//! `scraped_at` is NULL is a placeholder (a minimal Instagram profile): any scrape fills it.

use entity::{instagram_comments, instagram_posts, instagram_profiles, mastodon_statuses, twitter_data, twitter_users};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Value};

/// The upsert rule of one table.
pub(crate) struct Guard<C: 'static> {
    pub table: &'static str,
    /// The conflict target: the row's key.
    pub key: &'static [C],
    /// Taken from a newer scrape, unless it is NULL there (the source did not send it): then the known value
    /// stays.
    pub kept_when_missing: &'static [C],
    /// Taken from a newer scrape as it is.
    pub replaced: &'static [C],
    /// Set once: the first value known stays, whichever scrape brings it, an older one included.
    pub first_known: &'static [C],
    /// Taken from a newer scrape when the row changes, never compared (`raw`, `scraped_at`, `source`).
    pub metadata: &'static [C],
    /// The row's version, when the source has one (a Mastodon status's `edited_at`): a scrape of an older
    /// version never replaces a newer one, whichever was read last (NULL, never edited, is the oldest).
    pub version: Option<C>,
}

impl<C: IdenStatic + Copy> Guard<C> {
    /// The `ON CONFLICT (key) DO UPDATE ... WHERE ...` clause.
    pub fn on_conflict(&self) -> OnConflict {
        let t = self.table;
        let merged = |column: &C| {
            let name = column.as_str();
            if self.kept_when_missing.iter().any(|c| c.as_str() == name) {
                format!("COALESCE(EXCLUDED.{name}, {t}.{name})")
            } else {
                format!("EXCLUDED.{name}")
            }
        };
        let list = |items: Vec<String>| items.join(", ");
        let compared: Vec<&C> = self.kept_when_missing.iter().chain(self.replaced).collect();
        let current = list(compared.iter().map(|c| format!("{t}.{}", c.as_str())).collect());
        let incoming = list(compared.iter().map(|c| merged(c)).collect());
        let not_older = match &self.version {
            Some(v) => format!(" AND ({t}.{0} IS NULL OR EXCLUDED.{0} >= {t}.{0})", v.as_str()),
            None => String::new(),
        };
        let newer = format!("{t}.scraped_at IS NULL OR (EXCLUDED.scraped_at > {t}.scraped_at{not_older})");
        let update = format!(
            "{t}.scraped_at IS NULL OR (EXCLUDED.scraped_at > {t}.scraped_at{not_older} AND ({current}) IS DISTINCT FROM ({incoming}))"
        );
        let mut on_conflict = OnConflict::columns(self.key.iter().copied());
        if self.first_known.is_empty() {
            on_conflict
                .values(compared.iter().copied().chain(self.metadata).map(|c| (*c, Expr::cust(merged(c)))))
                .action_and_where(Expr::cust(update));
            return on_conflict;
        }
        // An older scrape may still bring a set-once value: every other column then stays as it is.
        let set_once = |c: &C| format!("COALESCE({t}.{0}, EXCLUDED.{0})", c.as_str());
        let known = list(self.first_known.iter().map(|c| format!("{t}.{}", c.as_str())).collect());
        let learned = list(self.first_known.iter().map(set_once).collect());
        let values = compared
            .iter()
            .copied()
            .chain(self.metadata)
            .map(|c| (*c, Expr::cust(format!("CASE WHEN {newer} THEN {} ELSE {t}.{} END", merged(c), c.as_str()))))
            .chain(self.first_known.iter().map(|c| (*c, Expr::cust(set_once(c)))));
        on_conflict
            .values(values)
            .action_and_where(Expr::cust(format!("({update}) OR ({known}) IS DISTINCT FROM ({learned})")));
        on_conflict
    }

    /// Whether `newer` (the later scrape of two of one row) holds an older version than `older`: then writing
    /// both in turn leaves `older`.
    pub fn is_stale<A>(&self, older: &A, newer: &A) -> bool
    where
        A: ActiveModelTrait,
        <A::Entity as EntityTrait>::Column: From<C>,
    {
        let Some(version) = self.version else { return false };
        let at = |model: &A| match model.get(version.into()) {
            ActiveValue::Set(Value::ChronoDateTimeUtc(at)) | ActiveValue::Unchanged(Value::ChronoDateTimeUtc(at)) => at,
            _ => None,
        };
        match (at(older), at(newer)) {
            (Some(_), None) => true,
            (Some(older), Some(newer)) => newer < older,
            (None, _) => false,
        }
    }

    /// Folds `newer` onto `older` (two scrapes of one row in a batch) as writing them in turn would: a NULL
    /// in `newer` keeps `older`'s value where the column is kept when missing, and a set-once column keeps
    /// `older`'s value when it has one.
    pub fn merge<A>(&self, older: &A, newer: &mut A)
    where
        A: ActiveModelTrait,
        <A::Entity as EntityTrait>::Column: From<C>,
    {
        let known = |model: &A, column| match model.get(column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) if value != value.as_null() => Some(value),
            _ => None,
        };
        for column in self.kept_when_missing.iter().map(|c| (*c).into()) {
            if known(newer, column).is_none()
                && let Some(value) = known(older, column)
            {
                newer.set(column, value);
            }
        }
        for column in self.first_known.iter().map(|c| (*c).into()) {
            if let Some(value) = known(older, column) {
                newer.set(column, value);
            }
        }
    }
}

pub(crate) const TWITTER_DATA: Guard<twitter_data::Column> = {
    use twitter_data::Column as C;
    Guard {
        table: "twitter_data",
        key: &[C::TweetId],
        kept_when_missing: &[
            C::AuthorId,
            C::CreatedAt,
            C::Lang,
            C::ConversationId,
            C::InReplyToUserId,
            C::RepliedToId,
            C::QuotedId,
            C::RetweetedId,
            C::RetweetCount,
            C::ReplyCount,
            C::LikeCount,
            C::QuoteCount,
            C::BookmarkCount,
            C::ImpressionCount,
            C::PossiblySensitive,
        ],
        replaced: &[C::Text, C::Hashtags, C::Mentions, C::Urls],
        first_known: &[],
        metadata: &[C::Source, C::Raw, C::ScrapedAt],
        version: None,
    }
};

pub(crate) const TWITTER_USERS: Guard<twitter_users::Column> = {
    use twitter_users::Column as C;
    Guard {
        table: "twitter_users",
        key: &[C::UserId],
        kept_when_missing: &[
            C::Name,
            C::Description,
            C::Location,
            C::Url,
            C::ProfileImageUrl,
            C::Verified,
            C::VerifiedType,
            C::Protected,
            C::CreatedAt,
            C::FollowersCount,
            C::FollowingCount,
            C::TweetCount,
            C::ListedCount,
            C::LikeCount,
        ],
        replaced: &[C::Username],
        first_known: &[],
        metadata: &[C::Raw, C::ScrapedAt],
        version: None,
    }
};

/// What a status always carries is replaced by a newer scrape (an edit changes content, tags, mentions);
/// what may come as null keeps the known value.
pub(crate) const MASTODON_STATUSES: Guard<mastodon_statuses::Column> = {
    use mastodon_statuses::Column as C;
    Guard {
        table: "mastodon_statuses",
        key: &[C::Instance, C::Id],
        kept_when_missing: &[
            C::Url,
            C::Language,
            C::Sensitive,
            C::InReplyToId,
            C::ReblogOfId,
            C::ReblogsCount,
            C::FavouritesCount,
            C::RepliesCount,
            C::EditedAt,
        ],
        replaced: &[
            C::Uri,
            C::CreatedAt,
            C::AccountId,
            C::AccountAcct,
            C::AccountUsername,
            C::ContentHtml,
            C::ContentText,
            C::SpoilerText,
            C::Visibility,
            C::Tags,
            C::Mentions,
        ],
        first_known: &[],
        metadata: &[C::Raw, C::ScrapedAt],
        version: Some(C::EditedAt),
    }
};

/// The Graph API and the web send different fields of a profile: what one leaves out keeps the other's value.
/// The Graph id comes only from a Graph scrape that names the web id: set once and kept, an older scrape's
/// included.
pub(crate) const INSTAGRAM_PROFILES: Guard<instagram_profiles::Column> = {
    use instagram_profiles::Column as C;
    Guard {
        table: "instagram_profiles",
        key: &[C::UserId],
        kept_when_missing: &[
            C::Username,
            C::FullName,
            C::Biography,
            C::ExternalUrl,
            C::ProfilePicUrl,
            C::Category,
            C::IsPrivate,
            C::IsVerified,
            C::IsBusiness,
            C::FollowersCount,
            C::FollowsCount,
            C::MediaCount,
        ],
        replaced: &[],
        first_known: &[C::GraphUserId],
        metadata: &[C::Source, C::Raw, C::ScrapedAt],
        version: None,
    }
};

/// Both APIs write one post row. The Graph id comes only from the Graph API, and the owner is a Graph id
/// from the one and a web id from the other (two numbers for one account): both are set once and kept.
pub(crate) const INSTAGRAM_POSTS: Guard<instagram_posts::Column> = {
    use instagram_posts::Column as C;
    Guard {
        table: "instagram_posts",
        key: &[C::MediaId],
        kept_when_missing: &[
            C::MediaType,
            C::Caption,
            C::Permalink,
            C::MediaUrl,
            C::ThumbnailUrl,
            C::TakenAt,
            C::LikeCount,
            C::CommentsCount,
            C::VideoViewCount,
        ],
        replaced: &[C::Shortcode],
        first_known: &[C::GraphMediaId, C::OwnerId],
        metadata: &[C::Source, C::Raw, C::ScrapedAt],
        version: None,
    }
};

pub(crate) const INSTAGRAM_COMMENTS: Guard<instagram_comments::Column> = {
    use instagram_comments::Column as C;
    Guard {
        table: "instagram_comments",
        key: &[C::CommentId],
        kept_when_missing: &[C::ParentCommentId, C::AuthorId, C::AuthorUsername, C::LikeCount, C::CreatedAt],
        replaced: &[C::MediaId, C::Text],
        first_known: &[],
        metadata: &[C::Source, C::Raw, C::ScrapedAt],
        version: None,
    }
};
