//! The guarded upsert in SQL and in memory. Each table's rule is in its entity's description
//! (`entity::description::Guard`: which columns a newer scrape replaces, which keep their known value when the
//! new one is NULL, which are set once, which are bookkeeping); from it this module makes the `ON CONFLICT`
//! clause and the merge of one batch's duplicates, so that a batch holding several scrapes of a row ends as if
//! they had been written one by one.

use entity::description::Guard;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Value};

/// What the inserter does with a guarded rule.
pub(crate) trait GuardRule<C> {
    /// The `ON CONFLICT (key) DO UPDATE ... WHERE ...` clause, for `table`.
    fn on_conflict(&self, table: &str) -> OnConflict;

    /// Whether `newer` (the later scrape of two of one row) holds an older version than `older`: then writing
    /// both in turn leaves `older`.
    fn is_stale<A>(&self, older: &A, newer: &A) -> bool
    where
        A: ActiveModelTrait,
        <A::Entity as EntityTrait>::Column: From<C>;

    /// Folds `newer` onto `older` (two scrapes of one row in a batch) as writing them in turn would: a NULL
    /// in `newer` keeps `older`'s value where the column is kept when missing, and a set-once column keeps
    /// `older`'s value when it has one.
    fn merge<A>(&self, older: &A, newer: &mut A)
    where
        A: ActiveModelTrait,
        <A::Entity as EntityTrait>::Column: From<C>;
}

impl<C: IdenStatic + Copy> GuardRule<C> for Guard<C> {
    fn on_conflict(&self, table: &str) -> OnConflict {
        let t = table;
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

    fn is_stale<A>(&self, older: &A, newer: &A) -> bool
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

    fn merge<A>(&self, older: &A, newer: &mut A)
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
