//! Reading change data capture the way Debezium does: a logical replication slot with the `pgoutput`
//! plugin on a publication, decoded into the row changes it carries (only what tests need to assert on).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// What happened to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

/// A row as text, one entry per column; `None` for SQL NULL.
pub type Row = Vec<Option<String>>;

/// One row change from the slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub table: String,
    /// The new row (insert, update) or the old key/row (delete), as text; `None` for SQL NULL.
    pub columns: Row,
    /// An update's old row (`REPLICA IDENTITY FULL`) or old key, when Postgres sent one.
    pub old_columns: Option<Row>,
}

/// Creates a pgoutput slot that records every change committed from now on.
pub async fn create_slot(db: &DatabaseConnection, slot: &str) -> Result<()> {
    let sql = format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')");
    db.execute_unprepared(&sql).await.context("create a logical replication slot")?;
    Ok(())
}

/// The changes the slot holds for `publication`, without consuming them.
pub async fn peek_changes(db: &DatabaseConnection, slot: &str, publication: &str) -> Result<Vec<Change>> {
    let sql = format!(
        "SELECT data FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, NULL, \
         'proto_version', '1', 'publication_names', '{publication}')"
    );
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    let mut relations: HashMap<u32, String> = HashMap::new();
    let mut changes = Vec::new();
    for row in rows {
        let message: Vec<u8> = row.try_get_by_index(0)?;
        let mut reader = Reader(&message);
        match reader.u8()? {
            b'R' => {
                let oid = reader.u32()?;
                let _namespace = reader.cstring()?;
                relations.insert(oid, reader.cstring()?);
            }
            kind @ (b'I' | b'U' | b'D') => {
                let table = relations.get(&reader.u32()?).cloned().context("change before its relation")?;
                let kind = match kind {
                    b'I' => ChangeKind::Insert,
                    b'U' => ChangeKind::Update,
                    _ => ChangeKind::Delete,
                };
                let (old_columns, columns) = reader.tuples()?;
                changes.push(Change { kind, table, columns, old_columns });
            }
            _ => {} // begin, commit, type, origin, truncate: not needed here
        }
    }
    Ok(changes)
}

/// A cursor over one pgoutput message (protocol version 1).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            bail!("truncated pgoutput message");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }

    fn cstring(&mut self) -> Result<String> {
        let end = self.0.iter().position(|&b| b == 0).context("unterminated string")?;
        let s = String::from_utf8(self.take(end)?.to_vec())?;
        self.take(1)?;
        Ok(s)
    }

    /// An update's old tuple (`K` key or `O` old row) if any, and its new tuple (`N`); a delete's old tuple
    /// comes back as the second element, being the only row it has.
    fn tuples(&mut self) -> Result<(Option<Row>, Row)> {
        let (mut old, mut new) = (None, None);
        while !self.0.is_empty() {
            match self.u8()? {
                b'N' => new = Some(self.tuple()?),
                b'K' | b'O' => old = Some(self.tuple()?),
                other => bail!("unknown tuple marker {other}"),
            }
        }
        match new {
            Some(new) => Ok((old, new)),
            None => Ok((None, old.context("change without a tuple")?)),
        }
    }

    fn tuple(&mut self) -> Result<Row> {
        let count = self.u16()?;
        (0..count)
            .map(|_| match self.u8()? {
                b't' => {
                    let len = self.u32()? as usize;
                    Ok(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
                }
                b'n' => Ok(None),
                b'u' => Ok(Some("<unchanged toast>".to_owned())),
                other => bail!("unknown tuple column kind {other}"),
            })
            .collect()
    }
}
