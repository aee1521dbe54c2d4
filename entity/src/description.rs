//! What the pipeline knows of a table beside its columns, written once next to its entity (`impl Described`):
//! how its rows meet the rows already stored (the upsert rule), which text columns an index holds and what
//! becomes of a value too long for it, whether the table is partitioned by day (and so has a retention),
//! whether the change stream publishes it, and whether its rows point at rows of the same table. The
//! inserter's tables and index limits, partition maintenance's tables and the publication's check derive from
//! these, through [`crate::for_each_table`].

use sea_orm::{EntityTrait, IdenStatic};

/// What becomes of a text value longer than its index can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooLong {
    /// Left out of the row: removed from its array, or NULL for a nullable scalar. The rest of the row is
    /// written.
    LeaveOut,
    /// The row is not written (the value is its key, or NOT NULL); the record's other rows still are.
    DropRow,
}

/// A text column an index holds, directly or through an expression such as `lower()`.
#[derive(Clone, Copy, Debug)]
pub struct Indexed<C: 'static> {
    pub column: C,
    pub too_long: TooLong,
}

pub const fn indexed<C>(column: C, too_long: TooLong) -> Indexed<C> {
    Indexed { column, too_long }
}

/// How a table's rows meet the rows already stored, and how one batch's rows of one key fold into one.
#[derive(Clone, Copy, Debug)]
pub enum Upsert<C: 'static> {
    /// The guarded upsert: a newer scrape replaces what it changes, and duplicates in a batch fold oldest
    /// first by the same rule.
    Guarded(Guard<C>),
    /// Written once: a conflict on `key` does nothing. Among one batch's rows of a key, one with `preferred`
    /// set wins (then the later record).
    Once { key: &'static [C], preferred: Option<C> },
    /// Written once, except that `column` is filled where it is NULL (and kept once known).
    FillOnce { key: &'static [C], column: C },
}

impl<C> Upsert<C> {
    /// The conflict target: a unique index's columns.
    pub fn key(&self) -> &'static [C] {
        match self {
            Self::Guarded(guard) => guard.key,
            Self::Once { key, .. } | Self::FillOnce { key, .. } => key,
        }
    }
}

/// The guarded upsert's rule: which columns a newer scrape replaces, which keep their known value when the
/// new one is NULL, which are set once and then kept, and which are bookkeeping. A row changes only when a
/// newer scrape brings a different value (or a set-once column learns its value), so a replay, or an
/// identical re-scrape, writes nothing and emits no change event. A row whose `scraped_at` is NULL is a
/// placeholder (a minimal Instagram profile): any scrape fills it.
#[derive(Clone, Copy, Debug)]
pub struct Guard<C: 'static> {
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

/// A row that points at another row of its table (`parent`, a nullable id, names `key`'s value of the other):
/// written after it when both are in one batch, since the reference is checked at each statement's end.
#[derive(Clone, Copy, Debug)]
pub struct SelfReference<C: 'static> {
    pub key: C,
    pub parent: C,
}

/// One table, as the pipeline sees it.
#[derive(Clone, Copy, Debug)]
pub struct Description<C: 'static> {
    /// How the inserter writes the table's rows; `None` for the bookkeeping tables, which the writer's own
    /// statements keep.
    pub upsert: Option<Upsert<C>>,
    pub indexed: &'static [Indexed<C>],
    /// One partition a day: partition maintenance makes the coming ones and applies the owner's retention.
    pub partitioned: bool,
    /// In the change stream's publication (`migration::PUBLISHED_TABLES`, the connector's
    /// `table.include.list`).
    pub published: bool,
    pub self_reference: Option<SelfReference<C>>,
}

impl<C> Description<C> {
    /// A bookkeeping table: the pipeline's state, not data. The writer's own statements keep it, and it stays
    /// out of the change stream.
    pub const BOOKKEEPING: Self =
        Self { upsert: None, indexed: &[], partitioned: false, published: false, self_reference: None };
}

/// An entity with its description.
pub trait Described: EntityTrait {
    const DESCRIPTION: &'static Description<Self::Column>;
}

/// Something done for each table's entity, in [`crate::for_each_table`]'s order.
pub trait EachTable {
    fn table<E: Described>(&mut self);
}

/// A description with its table and columns named, for lists over every table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub table: &'static str,
    /// The inserter writes its rows (it has an upsert rule).
    pub written: bool,
    pub indexed: Vec<(&'static str, TooLong)>,
    pub partitioned: bool,
    pub published: bool,
}

impl Facts {
    pub fn of<E: Described>() -> Self {
        let description = E::DESCRIPTION;
        Self {
            table: E::default().table_name(),
            written: description.upsert.is_some(),
            indexed: description.indexed.iter().map(|entry| (entry.column.as_str(), entry.too_long)).collect(),
            partitioned: description.partitioned,
            published: description.published,
        }
    }
}

/// Every table's facts, in [`crate::for_each_table`]'s order.
pub fn tables() -> Vec<Facts> {
    struct Collect(Vec<Facts>);
    impl EachTable for Collect {
        fn table<E: Described>(&mut self) {
            self.0.push(Facts::of::<E>());
        }
    }
    let mut collect = Collect(Vec::new());
    crate::for_each_table(&mut collect);
    collect.0
}
