//! Schema versions and the migration runner.
//!
//! Every schema version is kept as SQL text in `src/schema/`: `vN.sql` is the complete schema
//! of version N as a fresh database gets it, and `vN_to_vM.sql` is the step between two
//! versions. The version of a file is `PRAGMA user_version`; each step runs inside one
//! `BEGIN IMMEDIATE` transaction together with the new `user_version`, so a file is always
//! at exactly one version (a crash or an error mid-step rolls the step back).
//!
//! | version | schema |
//! |---|---|
//! | 1 | `kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`: the first cut, which did not stamp `user_version` (such files read 0) |
//! | 2 | `kv` rebuilt `STRICT`; `store_meta(name, value)` describing the file; `application_id` `0x57535943` (`WSYC`) |
//! | 3 | `kv` rebuilt as a rowid table (`STRICT`, the key a unique index): large rows no longer overflow into pages of their own |
//!
//! A fresh database is created from the current version's SQL directly, not by replaying the
//! steps; the crate's tests check that migrating every older version gives the same schema.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The schema version this code creates and migrates to.
pub const CURRENT_VERSION: i64 = 3;

/// `PRAGMA application_id` of a writesync store (version 2 on): `0x57535943`, ASCII `WSYC`.
pub const APPLICATION_ID: i64 = 0x5753_5943;

/// One schema version as SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The `user_version` of this schema.
    pub version: i64,
    /// The complete schema of a fresh database of this version.
    pub schema_sql: &'static str,
    /// The step from the previous version to this one (`None` for version 1).
    pub migration_sql: Option<&'static str>,
}

/// Every schema version, oldest first; the last one is [`CURRENT_VERSION`].
pub const VERSIONS: &[SchemaVersion] = &[
    SchemaVersion {
        version: 1,
        schema_sql: include_str!("schema/v1.sql"),
        migration_sql: None,
    },
    SchemaVersion {
        version: 2,
        schema_sql: include_str!("schema/v2.sql"),
        migration_sql: Some(include_str!("schema/v1_to_v2.sql")),
    },
    SchemaVersion {
        version: 3,
        schema_sql: include_str!("schema/v3.sql"),
        migration_sql: Some(include_str!("schema/v2_to_v3.sql")),
    },
];

/// The SQL of schema `version`, if it exists.
pub fn schema_sql(version: i64) -> Option<&'static str> {
    VERSIONS
        .iter()
        .find(|v| v.version == version)
        .map(|v| v.schema_sql)
}

fn current_schema_sql() -> Result<&'static str, StoreError> {
    schema_sql(CURRENT_VERSION).ok_or_else(|| StoreError::NotWritesync {
        reason: format!("no SQL for schema version {CURRENT_VERSION}"),
    })
}

fn header(conn: &Connection) -> Result<(i64, i64), rusqlite::Error> {
    let version = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
    let app = conn.pragma_query_value(None, "application_id", |r| r.get::<_, i64>(0))?;
    Ok((version, app))
}

/// Whether a file with this header may be opened (and migrated) by this code.
fn check_header(version: i64, app: i64) -> Result<(), StoreError> {
    let ours = app == APPLICATION_ID;
    if app != 0 && !ours {
        return Err(StoreError::NotWritesync {
            reason: format!("its application_id is {app:#x}, not {APPLICATION_ID:#x}"),
        });
    }
    if version > CURRENT_VERSION {
        if ours {
            return Err(StoreError::TooNew {
                found: version,
                supported: CURRENT_VERSION,
            });
        }
        return Err(StoreError::NotWritesync {
            reason: format!("its user_version is {version} but it has no writesync application_id"),
        });
    }
    if version < 0 || (version >= 2 && !ours) {
        return Err(StoreError::NotWritesync {
            reason: format!("its user_version is {version} but it has no writesync application_id"),
        });
    }
    Ok(())
}

/// What a file whose `user_version` is 0 holds.
enum Unversioned {
    /// Nothing: a new file.
    Empty,
    /// Exactly the first cut's `kv` table: version 1.
    FirstCut,
}

fn classify_unversioned(conn: &Connection) -> Result<Unversioned, StoreError> {
    let mut names = Vec::new();
    {
        let mut s = conn.prepare(
            "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        let rows = s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            names.push(row?);
        }
    }
    if names.is_empty() {
        return Ok(Unversioned::Empty);
    }
    if names == [("table".to_string(), "kv".to_string())] {
        let mut columns = Vec::new();
        let mut s =
            conn.prepare("SELECT name, type, pk FROM pragma_table_info('kv') ORDER BY cid")?;
        let rows = s.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            columns.push(row?);
        }
        let expected = [
            ("key".to_string(), "TEXT".to_string(), 1),
            ("value".to_string(), "TEXT".to_string(), 0),
        ];
        if columns == expected {
            return Ok(Unversioned::FirstCut);
        }
    }
    let list: Vec<String> = names.iter().map(|(t, n)| format!("{t} {n}")).collect();
    Err(StoreError::NotWritesync {
        reason: format!(
            "its user_version is 0 and it holds {} instead of nothing or a version 1 kv table",
            list.join(", ")
        ),
    })
}

fn foreign_key_check(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut s = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = s.query([])?;
    if rows.next()?.is_some() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
            Some("foreign_key_check found violations".into()),
        ));
    }
    Ok(())
}

/// Bring the database to [`CURRENT_VERSION`], one transaction per step.
///
/// Reads the header without a write lock first, so that opening an up-to-date file never
/// waits for a writer. Every step re-reads the version under `BEGIN IMMEDIATE`, so two
/// processes opening an old file at once migrate it once.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let latest = current_schema_sql()?;
    let (version, app) = header(conn)?;
    check_header(version, app)?;
    if version == CURRENT_VERSION {
        return Ok(());
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (version, app) = header(&tx)?;
        check_header(version, app)?;
        if version == CURRENT_VERSION {
            tx.commit()?;
            return Ok(());
        }
        let from = if version == 0 {
            match classify_unversioned(&tx)? {
                Unversioned::Empty => {
                    let fresh = |tx: &rusqlite::Transaction<'_>| -> Result<(), rusqlite::Error> {
                        tx.execute_batch(latest)?;
                        tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
                        foreign_key_check(tx)
                    };
                    fresh(&tx).map_err(|source| StoreError::Migration {
                        from: 0,
                        to: CURRENT_VERSION,
                        source,
                    })?;
                    tx.commit()?;
                    return Ok(());
                }
                Unversioned::FirstCut => 1,
            }
        } else {
            version
        };
        let to = from + 1;
        let step = VERSIONS
            .iter()
            .find(|v| v.version == to)
            .and_then(|v| v.migration_sql)
            .ok_or_else(|| StoreError::NotWritesync {
                reason: format!("no migration from schema version {from}"),
            })?;
        let run = |tx: &rusqlite::Transaction<'_>| -> Result<(), rusqlite::Error> {
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", to)?;
            foreign_key_check(tx)
        };
        run(&tx).map_err(|source| StoreError::Migration { from, to, source })?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_and_end_at_current() {
        for (i, v) in VERSIONS.iter().enumerate() {
            assert_eq!(v.version, i as i64 + 1);
            assert_eq!(v.migration_sql.is_some(), i > 0);
        }
        assert_eq!(VERSIONS.last().map(|v| v.version), Some(CURRENT_VERSION));
        assert!(current_schema_sql().is_ok());
    }

    #[test]
    fn header_rules() {
        assert!(check_header(0, 0).is_ok());
        assert!(check_header(1, 0).is_ok());
        assert!(check_header(2, APPLICATION_ID).is_ok());
        assert!(check_header(3, APPLICATION_ID).is_ok());
        assert!(matches!(
            check_header(2, 0),
            Err(StoreError::NotWritesync { .. })
        ));
        assert!(matches!(
            check_header(1, 7),
            Err(StoreError::NotWritesync { .. })
        ));
        assert!(matches!(
            check_header(4, APPLICATION_ID),
            Err(StoreError::TooNew {
                found: 4,
                supported: 3
            })
        ));
        assert!(matches!(
            check_header(9, 0),
            Err(StoreError::NotWritesync { .. })
        ));
        assert!(matches!(
            check_header(-1, 0),
            Err(StoreError::NotWritesync { .. })
        ));
    }
}
