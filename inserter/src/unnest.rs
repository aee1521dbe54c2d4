//! A bulk upsert of SeaORM active models in one statement, with one bind parameter per column:
//!
//! ```sql
//! INSERT INTO t (id, tags, raw) SELECT unnest($1::bigint[]), unnest($2::text[])::text[], unnest($3::text[])::jsonb
//! ON CONFLICT ...
//! ```
//!
//! `insert_many` binds every value on its own, so a batch becomes statements of up to 65,535 parameters that
//! Postgres must parse and plan; here a batch is one statement of a few arrays, several times faster (see
//! docs/benchmarks.md). The column list, the column types and the values all come from the entity, and the
//! `ON CONFLICT` clause is the same `OnConflict`. Set-returning functions in a select list advance in
//! lockstep, so row *i* takes element *i* of every array.

use std::io::Write;

use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ColumnType, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IdenStatic, Iterable, Value,
};

/// Upserts the active model `model(item)` of each item of `rows` in one statement. The first row's set
/// columns are the columns written; a column another row leaves unset is written as NULL.
pub async fn upsert<T, A: ActiveModelTrait>(
    txn: &DatabaseTransaction,
    rows: &[T],
    model: impl Fn(&T) -> &A,
    on_conflict: OnConflict,
) -> Result<(), DbErr> {
    let Some(first) = rows.first().map(&model) else { return Ok(()) };
    let columns: Vec<<A::Entity as EntityTrait>::Column> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|column| !matches!(first.get(*column), ActiveValue::NotSet))
        .collect();
    let mut select = Query::select();
    for column in &columns {
        let transport = Transport::of(column)?;
        let values = rows
            .iter()
            .map(|row| match model(row).get(*column) {
                ActiveValue::Set(value) | ActiveValue::Unchanged(value) if value != value.as_null() => {
                    transport.element(value, column.as_str()).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The statement text must tell the two forms apart: sqlx caches a prepared statement by its text,
        // with the parameter types of its first use, and would send a literal where an array was prepared.
        let (parameter, from) = match values.iter().all(Option::is_some) {
            true => (typed_array(values), ""),
            false => (Value::String(Some(array_literal(&values, column.as_str())?)), "::text"),
        };
        let Transport { element_type, per_row_cast, .. } = transport;
        select.expr(Expr::cust_with_values(format!("unnest($1{from}::{element_type}[]){per_row_cast}"), [parameter]));
    }
    let insert = Query::insert()
        .into_table(A::Entity::default())
        .columns(columns)
        .select_from(select)
        .map_err(|e| DbErr::Custom(format!("build the bulk upsert: {e}")))?
        .on_conflict(on_conflict)
        .to_owned();
    txn.execute(&insert).await.map(drop)
}

/// How one column's values travel: as an array of `element_type`, each element cast by `per_row_cast`.
struct Transport {
    element_type: &'static str,
    /// Empty for scalars. Arrays and JSON travel as text and are cast row by row: Postgres arrays cannot be
    /// ragged, and a JSON tree would otherwise be deep-copied on its way through sea-query and sqlx.
    per_row_cast: String,
}

impl Transport {
    fn of<C: ColumnTrait>(column: &C) -> Result<Self, DbErr> {
        let column_type = column.def().get_column_type().clone();
        Ok(match column_type {
            ColumnType::Array(inner) => Self::text(format!("::{}[]", scalar_type(&inner, column)?)),
            ColumnType::Json => Self::text("::json".into()),
            ColumnType::JsonBinary => Self::text("::jsonb".into()),
            scalar => Self { element_type: scalar_type(&scalar, column)?, per_row_cast: String::new() },
        })
    }

    fn text(per_row_cast: String) -> Self {
        Self { element_type: "text", per_row_cast }
    }

    fn element(&self, value: Value, column: &str) -> Result<Value, DbErr> {
        if self.per_row_cast.is_empty() {
            return Ok(value);
        }
        let mut text = Vec::new();
        write_text(&mut text, &value, column)?;
        Ok(Value::String(Some(String::from_utf8(text).map_err(|e| column_error(column, e))?)))
    }
}

fn scalar_type<C: IdenStatic>(column_type: &ColumnType, column: &C) -> Result<&'static str, DbErr> {
    Ok(match column_type {
        ColumnType::SmallInteger => "smallint",
        ColumnType::Integer => "integer",
        ColumnType::BigInteger => "bigint",
        ColumnType::Float => "real",
        ColumnType::Double => "double precision",
        ColumnType::Boolean => "boolean",
        ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_) => "text",
        ColumnType::Date => "date",
        ColumnType::TimestampWithTimeZone => "timestamptz",
        ColumnType::DateTime | ColumnType::Timestamp => "timestamp",
        other => {
            return Err(DbErr::Custom(format!(
                "bulk upsert: column `{}` has unsupported type {other:?}",
                column.as_str()
            )));
        }
    })
}

/// A column without NULLs travels as a typed array in the binary protocol, which Postgres reads without
/// parsing text. (sea-query binds arrays only when no element is NULL.)
fn typed_array(values: Vec<Option<Value>>) -> Value {
    let values: Vec<Value> = values.into_iter().flatten().collect();
    let array_type = values[0].array_type();
    Value::Array(array_type, Some(Box::new(values)))
}

/// `{"1","2",NULL}`: the text form, for a column with NULLs. Every element is quoted, so that no value
/// needs a rule of its own.
fn array_literal(values: &[Option<Value>], column: &str) -> Result<String, DbErr> {
    let mut out = Vec::with_capacity(16 * values.len());
    push_array(&mut out, values.iter().map(Option::as_ref), column)?;
    String::from_utf8(out).map_err(|e| column_error(column, e))
}

fn column_error(column: &str, error: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("bulk upsert: column `{column}`: {error}"))
}

fn push_array<'a>(
    out: &mut Vec<u8>,
    values: impl Iterator<Item = Option<&'a Value>>,
    column: &str,
) -> Result<(), DbErr> {
    out.push(b'{');
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match value {
            Some(value) if *value != value.as_null() => {
                out.push(b'"');
                write_text(&mut Escaped(out), value, column)?;
                out.push(b'"');
            }
            _ => out.extend_from_slice(b"NULL"),
        }
    }
    out.push(b'}');
    Ok(())
}

/// `value` in Postgres's text input format.
fn write_text(out: &mut impl Write, value: &Value, column: &str) -> Result<(), DbErr> {
    let io = |e: std::io::Error| column_error(column, e);
    match value {
        Value::Bool(Some(b)) => out.write_all(if *b { b"t" } else { b"f" }).map_err(io),
        Value::TinyInt(Some(n)) => write!(out, "{n}").map_err(io),
        Value::SmallInt(Some(n)) => write!(out, "{n}").map_err(io),
        Value::Int(Some(n)) => write!(out, "{n}").map_err(io),
        Value::BigInt(Some(n)) => write!(out, "{n}").map_err(io),
        Value::Float(Some(n)) => write!(out, "{n}").map_err(io),
        Value::Double(Some(n)) => write!(out, "{n}").map_err(io),
        Value::String(Some(s)) => out.write_all(s.as_bytes()).map_err(io),
        Value::ChronoDate(Some(d)) => write!(out, "{d}").map_err(io),
        Value::ChronoDateTime(Some(t)) => write!(out, "{t:?}").map_err(io),
        Value::ChronoDateTimeUtc(Some(t)) => {
            out.write_all(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true).as_bytes()).map_err(io)
        }
        Value::Json(Some(json)) => serde_json::to_writer(out, json).map_err(|e| io(e.into())),
        Value::Array(_, Some(items)) => {
            let mut array = Vec::new();
            push_array(&mut array, items.iter().map(Some), column)?;
            out.write_all(&array).map_err(io)
        }
        other => Err(column_error(column, format!("cannot pass {other:?}"))),
    }
}

/// Escapes what is special inside a quoted array element: `"` and `\` (both ASCII, so never inside a
/// multi-byte UTF-8 sequence).
struct Escaped<'a>(&'a mut Vec<u8>);

impl Write for Escaped<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(byte, b'"' | b'\\') {
                self.0.extend_from_slice(&bytes[start..i]);
                self.0.push(b'\\');
                start = i;
            }
        }
        self.0.extend_from_slice(&bytes[start..]);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
