//! One table's rows in a batch and the rule they are written by (its entity's description: the conflict
//! target, what a conflict does, and how one batch's scrapes of a row fold into one). Every table is
//! written by the same code from this rule and its entity: the column names, their types and the conflict
//! target all come from SeaORM.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::Described;
use entity::description::{SelfReference, Upsert};
use sea_orm::sea_query::{Expr, OnConflict, PostgresQueryBuilder, Query};
use sea_orm::{ActiveModelTrait, ActiveValue, ColumnTrait, ColumnType, EntityTrait, IdenStatic, Iterable, Value};

use crate::encode::{BinaryArray, Wire};
use crate::guard::GuardRule;
use crate::limits::{self, LeftOut, Modeled};

/// A row, the record it came from, and its JSON exactly as the source sent it (the table's `raw` column),
/// never parsed into a tree.
#[derive(Clone, Debug)]
pub struct Row<A> {
    pub record: usize,
    pub model: A,
    pub raw: Option<Box<str>>,
}

impl<A: ActiveModelTrait> Modeled for Row<A> {
    type Model = A;
    fn model(&self) -> &A {
        &self.model
    }
    fn model_mut(&mut self) -> &mut A {
        &mut self.model
    }
}

/// One statement's worth of rows, encoded: the SQL and one binary array per column.
pub(crate) struct Encoded {
    pub sql: String,
    pub arrays: Vec<BinaryArray>,
}

/// A table's rows of one batch, and the rule they are written by.
pub(crate) struct Table<E: EntityTrait + 'static> {
    pub rule: &'static Upsert<E::Column>,
    pub rows: Vec<Row<E::ActiveModel>>,
}

impl<E: Described> Table<E> {
    /// The table, written by the rule of its entity's description.
    pub(crate) fn described() -> Self {
        let rule = E::DESCRIPTION.upsert.as_ref();
        Self::new(rule.unwrap_or_else(|| panic!("{} has no upsert rule", E::default().table_name())))
    }
}

impl<E: EntityTrait> Table<E> {
    pub(crate) const fn new(rule: &'static Upsert<E::Column>) -> Self {
        Self { rule, rows: Vec::new() }
    }

    /// Whether a row carries its record's payload (`raw`): it then weighs that much in a statement.
    pub(crate) fn carries_payload(&self) -> bool {
        matches!(self.rule, Upsert::Guarded(_))
    }

    pub(crate) fn push(&mut self, record: usize, model: E::ActiveModel, raw: Option<Box<str>>) {
        self.rows.push(Row { record, model, raw });
    }

    /// Leaves out what an index cannot hold, then keeps one row per key: scrapes of a row folded in scrape
    /// order (the later record on a tie), as writing them one by one would, in key order. Doing it again
    /// changes nothing.
    pub(crate) fn prepare(&mut self, left_out: &mut LeftOut)
    where
        E: Described,
    {
        limits::fit(&mut self.rows, left_out);
        let mut groups: HashMap<Vec<u8>, Vec<Row<E::ActiveModel>>> = HashMap::new();
        for row in std::mem::take(&mut self.rows) {
            groups.entry(key_bytes(&row.model, self.rule.key())).or_default().push(row);
        }
        let mut kept: Vec<(Vec<u8>, Row<E::ActiveModel>)> = groups
            .into_iter()
            .map(|(key, mut group)| {
                let row = if group.len() == 1 { group.pop().expect("one row") } else { self.fold(group) };
                (key, row)
            })
            .collect();
        // Key order: two members writing the same rows (an author in both their batches) lock them in the same
        // order, so neither waits for a lock the other holds while holding one it wants: no deadlock.
        kept.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        self.rows = kept.into_iter().map(|(_, row)| row).collect();
        if let Some(reference) = &E::DESCRIPTION.self_reference {
            self.parents_first(reference);
        }
    }

    /// Orders the rows so that one comes after the row of this table it points at, when both are in the batch
    /// (the writer checks the reference at each statement's end); rows at one depth keep their key order.
    fn parents_first(&mut self, reference: &SelfReference<E::Column>) {
        let id = |model: &E::ActiveModel, column| match model.get(column) {
            ActiveValue::Set(Value::BigInt(Some(id))) | ActiveValue::Unchanged(Value::BigInt(Some(id))) => Some(id),
            _ => None,
        };
        let parent_of: HashMap<i64, Option<i64>> = self
            .rows
            .iter()
            .filter_map(|row| Some((id(&row.model, reference.key)?, id(&row.model, reference.parent))))
            .collect();
        // A chain is at most as long as the batch; a cycle (a hostile payload) stops there too.
        let depth = |mut at: Option<i64>| {
            let mut depth = 0;
            while let Some(Some(parent)) = at.and_then(|id| parent_of.get(&id)) {
                depth += 1;
                if depth > parent_of.len() {
                    break;
                }
                at = Some(*parent);
            }
            depth
        };
        self.rows.sort_by_cached_key(|row| depth(id(&row.model, reference.key)));
    }

    /// One row from several of one key, in record order.
    fn fold(&self, mut group: Vec<Row<E::ActiveModel>>) -> Row<E::ActiveModel> {
        match self.rule {
            Upsert::Guarded(guard) => {
                // Oldest first; a stable sort keeps record order on a tie, so the later record is newer.
                group.sort_by_key(|row| scraped_at(&row.model));
                let mut rows = group.into_iter();
                let mut merged = rows.next().expect("a group has rows");
                for mut next in rows {
                    if guard.is_stale(&merged.model, &next.model) {
                        continue;
                    }
                    guard.merge(&merged.model, &mut next.model);
                    merged = next;
                }
                merged
            }
            Upsert::Once { preferred: Some(column), .. } | Upsert::FillOnce { column, .. } => {
                let set = |row: &Row<E::ActiveModel>| !is_null(&row.model.get(*column));
                let best = group.iter().rposition(set).unwrap_or(group.len() - 1);
                group.swap_remove(best)
            }
            Upsert::Once { preferred: None, .. } => group.pop().expect("a group has rows"),
        }
    }

    /// The `ON CONFLICT` clause.
    fn on_conflict(&self) -> OnConflict {
        let table = E::default().table_name().to_owned();
        match self.rule {
            Upsert::Guarded(guard) => guard.on_conflict(&table),
            Upsert::Once { key, .. } => OnConflict::columns(key.iter().copied()).do_nothing().to_owned(),
            Upsert::FillOnce { key, column } => {
                let name = column.as_str();
                let mut on_conflict = OnConflict::columns(key.iter().copied());
                on_conflict
                    .update_column(*column)
                    .action_and_where(Expr::cust(format!("{table}.{name} IS NULL AND EXCLUDED.{name} IS NOT NULL")));
                on_conflict
            }
        }
    }

    /// Encodes `rows` as one upsert. The first row's set columns (and `raw` when it carries one) are the
    /// columns written; a column another row leaves unset is written as NULL.
    pub(crate) fn encode(&self, rows: &[Row<E::ActiveModel>]) -> Result<Encoded, String> {
        let first = rows.first().ok_or("no rows to encode")?;
        let columns: Vec<E::Column> = E::Column::iter()
            .filter(|c| !matches!(first.model.get(*c), ActiveValue::NotSet) || (is_raw(c) && first.raw.is_some()))
            .collect();
        let mut select = Query::select();
        let mut arrays = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let wire = Wire::of(column)?;
            let mut array = wire.array(rows.len());
            let raw_column = is_raw(column);
            for row in rows {
                match (raw_column, &row.raw, row.model.get(*column)) {
                    (true, Some(raw), _) => array.push_json_text(raw),
                    (_, _, ActiveValue::Set(value) | ActiveValue::Unchanged(value)) => {
                        array.push(&value, column.as_str())?
                    }
                    (_, _, ActiveValue::NotSet) => array.push_null(),
                }
            }
            select.expr(Expr::cust(wire.select_expr(i + 1, &sql_type(column)?)));
            arrays.push(array.finish());
        }
        let insert = Query::insert()
            .into_table(E::default())
            .columns(columns)
            .select_from(select)
            .map_err(|e| format!("build the upsert: {e}"))?
            .on_conflict(self.on_conflict())
            .to_owned();
        Ok(Encoded { sql: insert.to_string(PostgresQueryBuilder), arrays })
    }
}

/// The SQL type of a column, for the cast of a per-row array.
fn sql_type<C: ColumnTrait>(column: &C) -> Result<String, String> {
    match column.def().get_column_type() {
        ColumnType::Array(inner) => {
            let element = match inner.as_ref() {
                ColumnType::BigInteger => "bigint",
                ColumnType::Integer => "integer",
                ColumnType::SmallInteger => "smallint",
                ColumnType::Boolean => "boolean",
                ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_) => "text",
                ColumnType::TimestampWithTimeZone => "timestamptz",
                other => return Err(format!("column `{}`: arrays of {other:?} are not supported", column.as_str())),
            };
            Ok(format!("{element}[]"))
        }
        _ => Ok(String::new()),
    }
}

/// The key's values as bytes: equal keys, equal bytes.
fn key_bytes<A: ActiveModelTrait>(model: &A, key: &[<A::Entity as EntityTrait>::Column]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for column in key {
        match model.get(*column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) if value != value.as_null() => {
                let text = match value {
                    Value::String(Some(s)) => s.to_string(),
                    Value::BigInt(Some(n)) => format!("{n:020}"),
                    Value::Int(Some(n)) => format!("{n:011}"),
                    Value::ChronoDateTimeUtc(Some(t)) => t.to_rfc3339(),
                    other => format!("{other:?}"),
                };
                bytes.extend_from_slice(&(text.len() as u32).to_be_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
            _ => bytes.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    bytes
}

fn is_null(value: &ActiveValue<Value>) -> bool {
    match value {
        ActiveValue::Set(value) | ActiveValue::Unchanged(value) => *value == value.as_null(),
        ActiveValue::NotSet => true,
    }
}

/// The row's `scraped_at` (NULL first: a placeholder row is the oldest).
fn scraped_at<A: ActiveModelTrait>(model: &A) -> Option<DateTime<Utc>> {
    let column = <A::Entity as EntityTrait>::Column::iter().find(|c| c.as_str() == "scraped_at")?;
    match model.get(column) {
        ActiveValue::Set(Value::ChronoDateTimeUtc(Some(at)))
        | ActiveValue::Unchanged(Value::ChronoDateTimeUtc(Some(at))) => Some(at),
        _ => None,
    }
}

/// `model` without its `raw` JSON, and that JSON as text: for a mapping that builds its rows from a tree.
pub(crate) fn detach_raw<A: ActiveModelTrait>(mut model: A) -> (A, Option<Box<str>>) {
    let Some(column) = raw_column::<A>() else {
        return (model, None);
    };
    let raw = match model.take(column) {
        ActiveValue::Set(Value::Json(Some(json))) | ActiveValue::Unchanged(Value::Json(Some(json))) => {
            Some(json.to_string().into())
        }
        _ => None,
    };
    model.not_set(column);
    (model, raw)
}

/// `items` split into chunks of at most `max_items` and about `max_bytes` (by `weight`; one item alone may
/// exceed it), each with the position of its first item.
pub(crate) fn chunks<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<(usize, &[T])> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (position, item) in items.iter().enumerate() {
        let item_bytes = weight(item);
        if position > start && (position - start >= max_items || bytes + item_bytes > max_bytes) {
            chunks.push((start, &items[start..position]));
            (start, bytes) = (position, 0);
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        chunks.push((start, &items[start..]));
    }
    chunks
}

/// Whether `column` is its table's `raw` column: the JSON as the source sent it, which a [`Row`] carries
/// beside its model.
pub(crate) fn is_raw<C: IdenStatic>(column: &C) -> bool {
    column.as_str() == "raw"
}

/// The `raw` column of `A`'s table, if it has one.
pub(crate) fn raw_column<A: ActiveModelTrait>() -> Option<<A::Entity as EntityTrait>::Column> {
    <A::Entity as EntityTrait>::Column::iter().find(is_raw)
}

#[cfg(test)]
mod tests {
    use entity::instagram_comments;
    use sea_orm::ActiveValue::Set;

    use super::*;

    fn comment(id: i64, parent: Option<i64>) -> instagram_comments::ActiveModel {
        instagram_comments::ActiveModel {
            comment_id: Set(id),
            parent_comment_id: Set(parent),
            scraped_at: Set(Utc::now()),
            ..Default::default()
        }
    }

    fn prepared(comments: Vec<instagram_comments::ActiveModel>) -> Vec<i64> {
        let mut table = Table::<instagram_comments::Entity>::described();
        for (record, model) in comments.into_iter().enumerate() {
            table.push(record, model, None);
        }
        table.prepare(&mut LeftOut::new());
        table.rows.iter().map(|row| *row.model.comment_id.as_ref()).collect()
    }

    #[test]
    fn a_row_comes_after_the_row_of_its_table_it_points_at_whatever_their_keys() {
        // 3 answers 9, which answers 5; 1 answers a comment outside the batch; 7 stands alone.
        let order = prepared(vec![
            comment(3, Some(9)),
            comment(9, Some(5)),
            comment(5, None),
            comment(1, Some(100)),
            comment(7, None),
        ]);
        let at = |id: i64| order.iter().position(|&x| x == id).unwrap();
        assert!(at(5) < at(9) && at(9) < at(3), "{order:?}");
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn a_cycle_of_references_ends_the_ordering_without_losing_a_row() {
        let mut order = prepared(vec![comment(1, Some(2)), comment(2, Some(1)), comment(3, Some(3))]);
        order.sort();
        assert_eq!(order, [1, 2, 3]);
    }
}
