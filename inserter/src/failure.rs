//! What a failed statement means for the batch that sent it: the database is unwell (retry the whole batch
//! later), a concurrent writer got there first (run the statement again), something in the rows is at fault
//! (split them until the guilty rows stand alone), or the deployment is wrong (stop and say what to fix).
//! The rule is one table of SQLSTATE classes, [`RULES`], which docs/architecture.md reproduces.

use sea_orm::{DbErr, RuntimeErr};

/// How the writer reacts to a failed statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// The database cannot work right now: nothing is committed, the whole batch is retried with backoff,
    /// and `/healthz` says so.
    RetryBatch,
    /// Another writer committed a row this statement collided with (a unique index other than the upsert's
    /// target). Under read committed the same statement, run again, sees that row and updates it instead.
    RetryStatement,
    /// Something in the statement's rows is at fault: split them; a row that fails alone is dead-lettered.
    IsolateRows,
    /// The role lacks a grant, or the schema is not the one migrated: no retry can help.
    Stop,
}

/// SQLSTATEs by prefix, the longest matching prefix winning; a code no rule names is the rows' fault.
pub const RULES: &[(&str, Reaction, &str)] = {
    use Reaction::*;
    &[
        ("08", RetryBatch, "connection exception: the connection broke or could not be made"),
        ("28", RetryBatch, "invalid authorization: a password being rotated, a role being re-created"),
        ("40", RetryBatch, "transaction rollback: serialization failure (40001), deadlock (40P01)"),
        ("53", RetryBatch, "insufficient resources: disk full, out of memory, too many connections"),
        ("55P03", RetryBatch, "lock not available (lock_timeout)"),
        ("55006", RetryBatch, "object in use (a concurrent DDL or VACUUM FULL)"),
        ("57P", RetryBatch, "operator intervention: admin or crash shutdown, cannot connect now, database dropped"),
        ("58", RetryBatch, "system error: I/O error, a file the server expected is missing"),
        ("25006", RetryBatch, "read-only transaction: connected to a standby (during a fail-over)"),
        ("XX", RetryBatch, "internal error or corruption: the server's fault, not the rows'"),
        ("23505", RetryStatement, "unique violation outside the upsert's target: a concurrent writer's new row"),
        ("42501", Stop, "insufficient privilege: the role lacks a grant"),
        ("42P01", Stop, "undefined table: the schema is not migrated"),
        ("42703", Stop, "undefined column: the schema is not migrated"),
        ("42883", Stop, "undefined function: the schema is not migrated"),
        ("3D000", Stop, "the database does not exist"),
        ("22", IsolateRows, "data exception: a value out of range, invalid text, an unsupported escape"),
        ("23", IsolateRows, "integrity violation: a CHECK, NOT NULL or foreign key (deferred ones included)"),
        ("54", IsolateRows, "program limit exceeded: an index row or a statement too large"),
        ("57014", IsolateRows, "query canceled: statement_timeout on a statement too big or too slow"),
        ("42", IsolateRows, "syntax or access rule raised by a value (e.g. a datatype mismatch)"),
    ]
};

/// The reaction to the SQLSTATE `code`.
pub fn reaction_to(code: &str) -> Reaction {
    RULES
        .iter()
        .filter(|(prefix, _, _)| code.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map_or(Reaction::IsolateRows, |(_, reaction, _)| *reaction)
}

/// The reaction to `error`, a statement's or a transaction's.
pub fn classify(error: &DbErr) -> Reaction {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Reaction::RetryBatch,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => classify_sqlx(e),
        // A value the statement could not be built or bound with.
        _ => Reaction::IsolateRows,
    }
}

fn classify_sqlx(error: &sea_orm::sqlx::Error) -> Reaction {
    use sea_orm::sqlx::Error;
    match error {
        Error::Database(db) => db.code().map_or(Reaction::IsolateRows, |code| reaction_to(&code)),
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::BeginFailed => Reaction::RetryBatch,
        _ => Reaction::IsolateRows,
    }
}

/// The SQLSTATE and the server's message of `error`, as a dead letter's reason gives them.
pub fn describe(error: &DbErr) -> String {
    if let DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) = error
        && let sea_orm::sqlx::Error::Database(db) = e.as_ref()
    {
        let code = db.code().unwrap_or_default();
        return format!("SQLSTATE {code}: {}", db.message());
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::{RULES, Reaction, reaction_to};

    #[test]
    fn every_rule_applies_to_the_codes_it_names() {
        for (prefix, reaction, why) in RULES {
            // A full five-character code under the prefix: the prefix itself padded with zeros.
            let code = format!("{prefix:0<5}");
            assert_eq!(reaction_to(&code), *reaction, "{code} ({why})");
        }
    }

    #[test]
    fn the_codes_the_issue_names_get_their_reaction() {
        use Reaction::*;
        let cases = [
            ("08006", RetryBatch), // connection failure
            ("08P01", RetryBatch), // protocol violation
            ("57P01", RetryBatch), // admin shutdown
            ("57P02", RetryBatch), // crash shutdown
            ("57P03", RetryBatch), // cannot connect now
            ("53100", RetryBatch), // disk full
            ("53300", RetryBatch), // too many connections
            ("40001", RetryBatch), // serialization failure
            ("40P01", RetryBatch), // deadlock
            ("55P03", RetryBatch), // lock not available
            ("23505", RetryStatement),
            ("23503", IsolateRows), // foreign key, at commit when deferred
            ("23514", IsolateRows), // check
            ("23502", IsolateRows), // not null
            ("22021", IsolateRows), // invalid byte sequence
            ("22P05", IsolateRows), // untranslatable character (\u0000 in jsonb)
            ("22003", IsolateRows), // numeric out of range
            ("54000", IsolateRows), // index row too large
            ("54001", IsolateRows), // statement too complex
            ("57014", IsolateRows), // statement timeout
            ("42804", IsolateRows), // datatype mismatch
            ("42501", Stop),
            ("42P01", Stop),
            ("0A000", IsolateRows), // a code no rule names
        ];
        for (code, reaction) in cases {
            assert_eq!(reaction_to(code), reaction, "{code}");
        }
    }
}
