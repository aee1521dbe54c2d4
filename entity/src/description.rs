//! What the pipeline knows of a table beside its columns, written once next to its entity (`impl Described`):
//! which text columns an index holds and what becomes of a value too long for it, whether the table is
//! partitioned by day (and so has a retention), and whether the change stream publishes it. The inserter's
//! index limits, partition maintenance's tables and the publication's check derive from these, through
//! [`crate::for_each_table`].

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

/// One table, as the pipeline sees it.
#[derive(Clone, Copy, Debug)]
pub struct Description<C: 'static> {
    pub indexed: &'static [Indexed<C>],
    /// One partition a day: partition maintenance makes the coming ones and applies the owner's retention.
    pub partitioned: bool,
    /// In the change stream's publication (`migration::PUBLISHED_TABLES`, the connector's
    /// `table.include.list`).
    pub published: bool,
}

/// An entity with its description.
pub trait Described: EntityTrait {
    const DESCRIPTION: Description<Self::Column>;
}

/// Something done for each table's entity, in [`crate::for_each_table`]'s order.
pub trait EachTable {
    fn table<E: Described>(&mut self);
}

/// A description with its table and columns named, for lists over every table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub table: &'static str,
    pub indexed: Vec<(&'static str, TooLong)>,
    pub partitioned: bool,
    pub published: bool,
}

impl Facts {
    pub fn of<E: Described>() -> Self {
        let description = E::DESCRIPTION;
        Self {
            table: E::default().table_name(),
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
