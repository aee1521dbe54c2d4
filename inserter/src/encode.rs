//! Column values in Postgres's binary format: each column of a statement travels as one binary array
//! parameter (`unnest($1::bigint[])`), which Postgres reads without parsing text. The element type of each
//! array comes from the entity's column type, so a value of another type is an error here, not a cast there.
//!
//! Per-row arrays (`text[]` columns) cannot travel as one array of arrays, since Postgres arrays are not
//! ragged: each row's array travels as its text form and is cast row by row (`::text[]`). JSON travels as the
//! bytes the source sent (`jsonb`'s binary form is a version byte and the text).

use chrono::{DateTime, Datelike, Utc};
use sea_orm::sqlx::encode::IsNull;
use sea_orm::sqlx::error::BoxDynError;
use sea_orm::sqlx::postgres::types::Oid;
use sea_orm::sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sea_orm::sqlx::{Encode, Postgres, Type};
use sea_orm::{ColumnTrait, ColumnType, Value};

/// How one column's values travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wire {
    element: Element,
    /// The column is an array: each row's value is its text form, cast by the statement.
    per_row_array: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Boolean,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    JsonB,
    Bytea,
}

impl Element {
    fn of(column_type: &ColumnType) -> Option<Self> {
        Some(match column_type {
            ColumnType::SmallInteger => Self::SmallInt,
            ColumnType::Integer => Self::Integer,
            ColumnType::BigInteger => Self::BigInt,
            ColumnType::Float => Self::Real,
            ColumnType::Double => Self::Double,
            ColumnType::Boolean => Self::Boolean,
            ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_) => Self::Text,
            ColumnType::Date => Self::Date,
            ColumnType::DateTime | ColumnType::Timestamp => Self::Timestamp,
            ColumnType::TimestampWithTimeZone => Self::TimestampTz,
            ColumnType::Json => Self::Json,
            ColumnType::JsonBinary => Self::JsonB,
            ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => Self::Bytea,
            _ => return None,
        })
    }

    /// The SQL name, the OID of the element and of its array.
    fn types(self) -> (&'static str, u32, u32) {
        match self {
            Self::SmallInt => ("smallint", 21, 1005),
            Self::Integer => ("integer", 23, 1007),
            Self::BigInt => ("bigint", 20, 1016),
            Self::Real => ("real", 700, 1021),
            Self::Double => ("double precision", 701, 1022),
            Self::Boolean => ("boolean", 16, 1000),
            Self::Text => ("text", 25, 1009),
            Self::Date => ("date", 1082, 1182),
            Self::Timestamp => ("timestamp", 1114, 1115),
            Self::TimestampTz => ("timestamptz", 1184, 1185),
            Self::Json => ("json", 114, 199),
            Self::JsonB => ("jsonb", 3802, 3807),
            Self::Bytea => ("bytea", 17, 1001),
        }
    }
}

impl Wire {
    /// How `column`'s values travel, from its entity definition.
    pub(crate) fn of<C: ColumnTrait>(column: &C) -> Result<Self, String> {
        let column_type = column.def().get_column_type().clone();
        let unsupported = || format!("column `{}` has a type the writer cannot send: {column_type:?}", column.as_str());
        match &column_type {
            ColumnType::Array(inner) => {
                Element::of(inner).ok_or_else(unsupported)?;
                Ok(Self { element: Element::Text, per_row_array: true })
            }
            other => Ok(Self { element: Element::of(other).ok_or_else(unsupported)?, per_row_array: false }),
        }
    }

    /// `unnest($n::type[])` with the cast a per-row array needs, given the column's SQL type.
    pub(crate) fn select_expr(&self, parameter: usize, column_sql_type: &str) -> String {
        let (element, _, _) = self.element.types();
        match self.per_row_array {
            true => format!("unnest(${parameter}::text[])::{column_sql_type}"),
            false => format!("unnest(${parameter}::{element}[])"),
        }
    }

    /// An empty array of this column's values.
    pub(crate) fn array(&self, rows: usize) -> BinaryArray {
        let (_, element_oid, array_oid) = self.element.types();
        let mut bytes = Vec::with_capacity(20 + rows * 12);
        // ndim 1, has-nulls (patched at the end), element type, length (patched), lower bound 1.
        for word in [1_i32, 0, element_oid as i32, 0, 1] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        BinaryArray { bytes, array_oid, len: 0, has_nulls: false, wire: *self }
    }
}

/// One column's values as a binary array parameter.
pub(crate) struct BinaryArray {
    bytes: Vec<u8>,
    array_oid: u32,
    len: i32,
    has_nulls: bool,
    wire: Wire,
}

impl BinaryArray {
    pub(crate) fn push_null(&mut self) {
        self.bytes.extend_from_slice(&(-1_i32).to_be_bytes());
        self.has_nulls = true;
        self.len += 1;
    }

    /// Appends `value` (a NULL of any type is a NULL); `column` names it in an error.
    pub(crate) fn push(&mut self, value: &Value, column: &str) -> Result<(), String> {
        if *value == value.as_null() {
            self.push_null();
            return Ok(());
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        let written = match self.wire.per_row_array {
            true => push_array_text(&mut self.bytes, value),
            false => push_element(&mut self.bytes, self.wire.element, value),
        };
        if !written {
            self.bytes.truncate(start);
            let (expected, _, _) = self.wire.element.types();
            let expected = if self.wire.per_row_array { "an array" } else { expected };
            return Err(format!("column `{column}`: {value:?} is not {expected}"));
        }
        self.close_element(start);
        Ok(())
    }

    /// Appends JSON text as a `json`/`jsonb` element.
    pub(crate) fn push_json_text(&mut self, text: &str) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        if self.wire.element == Element::JsonB {
            self.bytes.push(1);
        }
        self.bytes.extend_from_slice(text.as_bytes());
        self.close_element(start);
    }

    fn close_element(&mut self, start: usize) {
        let len = (self.bytes.len() - start - 4) as i32;
        self.bytes[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.len += 1;
    }

    /// The array, ready to bind.
    pub(crate) fn finish(mut self) -> Self {
        self.bytes[4..8].copy_from_slice(&(self.has_nulls as i32).to_be_bytes());
        self.bytes[12..16].copy_from_slice(&self.len.to_be_bytes());
        self
    }
}

fn push_element(out: &mut Vec<u8>, element: Element, value: &Value) -> bool {
    // Postgres counts time from 2000-01-01: day 730,120 of the common era, 946,684,800 s after Unix's.
    const EPOCH_DAYS: i32 = 730_120;
    const EPOCH_MICROS: i64 = 946_684_800_000_000;
    match (element, value) {
        (Element::SmallInt, Value::SmallInt(Some(n))) => out.extend_from_slice(&n.to_be_bytes()),
        (Element::Integer, Value::Int(Some(n))) => out.extend_from_slice(&n.to_be_bytes()),
        (Element::BigInt, Value::BigInt(Some(n))) => out.extend_from_slice(&n.to_be_bytes()),
        (Element::Real, Value::Float(Some(n))) => out.extend_from_slice(&n.to_be_bytes()),
        (Element::Double, Value::Double(Some(n))) => out.extend_from_slice(&n.to_be_bytes()),
        (Element::Boolean, Value::Bool(Some(b))) => out.push(*b as u8),
        (Element::Text, Value::String(Some(s))) => out.extend_from_slice(s.as_bytes()),
        (Element::Date, Value::ChronoDate(Some(d))) => {
            let days = d.num_days_from_ce() - EPOCH_DAYS;
            out.extend_from_slice(&days.to_be_bytes())
        }
        (Element::Timestamp, Value::ChronoDateTime(Some(t))) => {
            out.extend_from_slice(&(micros(&t.and_utc()) - EPOCH_MICROS).to_be_bytes())
        }
        (Element::TimestampTz, Value::ChronoDateTimeUtc(Some(t))) => {
            out.extend_from_slice(&(micros(t) - EPOCH_MICROS).to_be_bytes())
        }
        (Element::Json | Element::JsonB, Value::Json(Some(json))) => {
            if element == Element::JsonB {
                out.push(1);
            }
            serde_json::to_writer(&mut *out, json).expect("a JSON value serializes");
        }
        (Element::Bytea, Value::Bytes(Some(bytes))) => out.extend_from_slice(bytes),
        _ => return false,
    }
    true
}

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp() * 1_000_000 + i64::from(t.timestamp_subsec_micros())
}

/// `{"a","b",NULL}`: an array's text form. Every element is quoted, so no value needs a rule of its own.
fn push_array_text(out: &mut Vec<u8>, value: &Value) -> bool {
    let Value::Array(_, Some(items)) = value else { return false };
    out.push(b'{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let text = match item {
            item if *item == item.as_null() => None,
            Value::String(Some(s)) => Some(s.to_string()),
            Value::BigInt(Some(n)) => Some(n.to_string()),
            Value::Int(Some(n)) => Some(n.to_string()),
            Value::SmallInt(Some(n)) => Some(n.to_string()),
            Value::Bool(Some(b)) => Some(if *b { "t" } else { "f" }.to_owned()),
            Value::Double(Some(n)) => Some(n.to_string()),
            Value::Float(Some(n)) => Some(n.to_string()),
            Value::ChronoDateTimeUtc(Some(t)) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            Value::ChronoDateTime(Some(t)) => Some(format!("{t:?}")),
            Value::ChronoDate(Some(d)) => Some(d.to_string()),
            _ => return false,
        };
        match text {
            None => out.extend_from_slice(b"NULL"),
            Some(text) => {
                out.push(b'"');
                for byte in text.bytes() {
                    // `"` and `\` are ASCII, so never inside a multi-byte UTF-8 sequence.
                    if matches!(byte, b'"' | b'\\') {
                        out.push(b'\\');
                    }
                    out.push(byte);
                }
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
    true
}

impl Type<Postgres> for BinaryArray {
    fn type_info() -> PgTypeInfo {
        // Each value says its own type (`produces`): this is never used.
        PgTypeInfo::with_oid(Oid(1009))
    }
}

impl Encode<'_, Postgres> for BinaryArray {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.bytes);
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(Oid(self.array_oid)))
    }

    fn size_hint(&self) -> usize {
        self.bytes.len()
    }
}
