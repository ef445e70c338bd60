//! The audit trail's hash chain, so that editing, deleting or moving an
//! event with an outside tool is detectable. One chain runs through the
//! whole database in id order (events of every organization and the
//! database-wide ones such as `database.restored`): the file is what an
//! attacker gets write access to and what backup and restore move, and one
//! head hash is all an operator has to record to detect a rewrite.
//!
//! An event's hash is SHA-256 over a fixed domain tag and its fields, each
//! encoded as `0x00` (NULL) or `0x01`, an 8-byte big-endian length and the
//! UTF-8 bytes (integers as decimal text), in this order: id, org_id, at,
//! actor, actor_addr, action, target_kind, target_id, detail, prev_hash.
//! The id is included, so moving an event to another position changes its
//! hash; `prev_hash` is the hex hash of the event before it (NULL for the
//! first), so removing or inserting one breaks the next event's link.

use std::fmt::{self, Write as _};

use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::{Result, StoreError, secs};
use crate::domain::{Actor, Timestamp};

/// Separates this hash from any other SHA-256 of similar bytes.
const DOMAIN_TAG: &[u8] = b"plexmcp-audit-v1";
/// Rows re-hashed per statement while chaining an upgraded database.
const CHAIN_BATCH: i64 = 500;

/// One stored event as the chain sees it: every column, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainedRow {
    pub id: i64,
    pub org_id: Option<i64>,
    pub at: i64,
    pub actor: String,
    pub actor_addr: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub detail: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The columns `ChainedRow::from_row` reads, in its order.
pub(super) const CHAIN_COLUMNS: &str =
    "id, org_id, at, actor, actor_addr, action, target_kind, target_id, detail, prev_hash, hash";

impl ChainedRow {
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedRow> {
        Ok(ChainedRow {
            id: r.get(0)?,
            org_id: r.get(1)?,
            at: r.get(2)?,
            actor: r.get(3)?,
            actor_addr: r.get(4)?,
            action: r.get(5)?,
            target_kind: r.get(6)?,
            target_id: r.get(7)?,
            detail: r.get(8)?,
            prev_hash: r.get(9)?,
            hash: r.get(10)?,
        })
    }

    /// The hash this row's content and link should have.
    pub(super) fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(DOMAIN_TAG);
        field(&mut h, Some(self.id.to_string().as_bytes()));
        field(
            &mut h,
            self.org_id
                .map(|o| o.to_string())
                .as_deref()
                .map(str::as_bytes),
        );
        field(&mut h, Some(self.at.to_string().as_bytes()));
        field(&mut h, Some(self.actor.as_bytes()));
        field(&mut h, self.actor_addr.as_deref().map(str::as_bytes));
        field(&mut h, Some(self.action.as_bytes()));
        field(&mut h, Some(self.target_kind.as_bytes()));
        field(&mut h, Some(self.target_id.as_bytes()));
        field(&mut h, self.detail.as_deref().map(str::as_bytes));
        field(&mut h, self.prev_hash.as_deref().map(str::as_bytes));
        let mut hex = String::with_capacity(64);
        for byte in h.finalize().iter() {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

/// One field of the canonical encoding: NULL and "" stay distinct, and a
/// length prefix keeps one field's bytes from passing for the next's.
fn field(h: &mut Sha256, value: Option<&[u8]>) {
    match value {
        None => h.update([0u8]),
        Some(bytes) => {
            h.update([1u8]);
            h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
            h.update(bytes);
        }
    }
}

/// An event about to be written.
pub(super) struct NewEvent<'a> {
    pub org_id: Option<i64>,
    pub at: Timestamp,
    pub actor: &'a Actor,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    pub detail: Option<&'a str>,
}

/// Appends `event` to the chain. Must run inside a write transaction
/// (`Store::write_tx` takes the write lock up front), so no other process
/// can append between reading the head and inserting after it.
pub(super) fn append(tx: &Transaction<'_>, event: &NewEvent<'_>) -> Result<()> {
    let head: Option<(i64, Option<String>)> = tx
        .prepare_cached("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (id, prev_hash) = match head {
        None => (1, None),
        Some((id, hash)) => {
            let next = id
                .checked_add(1)
                .ok_or_else(|| StoreError::Conflict("the audit trail is full".into()))?;
            (next, hash)
        }
    };
    let mut row = ChainedRow {
        id,
        org_id: event.org_id,
        at: secs(event.at),
        actor: event.actor.user.clone(),
        actor_addr: event.actor.addr.clone(),
        action: event.action.to_owned(),
        target_kind: event.target_kind.to_owned(),
        target_id: event.target_id.to_owned(),
        detail: event.detail.map(str::to_owned),
        prev_hash,
        hash: None,
    };
    row.hash = Some(row.expected_hash());
    tx.prepare_cached(
        "INSERT INTO audit_events (id, org_id, at, actor, actor_addr, action, target_kind, target_id, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        row.id,
        row.org_id,
        row.at,
        row.actor,
        row.actor_addr,
        row.action,
        row.target_kind,
        row.target_id,
        row.detail,
        row.prev_hash,
        row.hash
    ])?;
    Ok(())
}

/// Migration hook: chains the events written before the chain existed, in
/// id order, in batches so a long trail is never held in memory at once.
pub(super) fn chain_existing(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut after = i64::MIN;
    let mut prev_hash: Option<String> = None;
    loop {
        let batch: Vec<ChainedRow> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit_events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, CHAIN_BATCH], ChainedRow::from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.id;
        for mut row in batch {
            row.prev_hash = prev_hash.take();
            let hash = row.expected_hash();
            tx.execute(
                "UPDATE audit_events SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                params![row.prev_hash, hash, row.id],
            )?;
            prev_hash = Some(hash);
        }
    }
}

/// Why the chain is broken at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// No hash at all: the row was inserted by something other than plexmcp.
    Unhashed,
    /// The content no longer matches the row's own hash.
    Edited,
    /// The row's link does not name the row before it (`None`: the row is
    /// first, yet names a predecessor).
    Unlinked { previous: Option<i64> },
}

/// The first row at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub row_id: i64,
    pub problem: LinkProblem,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.row_id;
        match &self.problem {
            LinkProblem::Unhashed => write!(
                f,
                "audit event {id} has no hash: it was added outside plexmcp"
            ),
            LinkProblem::Edited => write!(
                f,
                "audit event {id} was changed after it was written: its content does not match its hash"
            ),
            LinkProblem::Unlinked { previous: Some(p) } if id == p + 1 => write!(
                f,
                "audit event {id} does not follow event {p}: its previous-hash is not {p}'s hash, so events were moved or replaced"
            ),
            LinkProblem::Unlinked { previous: Some(p) } => write!(
                f,
                "audit event {id} does not follow event {p}: its previous-hash is not {p}'s hash, so the events between them were deleted"
            ),
            LinkProblem::Unlinked { previous: None } => write!(
                f,
                "audit event {id} is the first one but links to an earlier event: the events before it were deleted"
            ),
        }
    }
}

/// What verifying the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Events checked (all of them when the chain holds).
    pub events: u64,
    /// The last event's id and hash: the value to record for later checks.
    pub head: Option<(i64, String)>,
    pub broken: Option<BrokenLink>,
    /// With an expected head: the id of the event that has it, if any.
    pub expected_head_at: Option<i64>,
}

/// Checks rows one at a time, in id order, remembering only the last.
#[derive(Debug, Default)]
pub(super) struct Verifier {
    last: Option<(i64, String)>,
    events: u64,
}

impl Verifier {
    /// Checks the next row; the first problem found is the answer.
    pub(super) fn check(&mut self, row: &ChainedRow) -> std::result::Result<(), BrokenLink> {
        let broken = |problem| BrokenLink {
            row_id: row.id,
            problem,
        };
        let Some(hash) = &row.hash else {
            return Err(broken(LinkProblem::Unhashed));
        };
        if *hash != row.expected_hash() {
            return Err(broken(LinkProblem::Edited));
        }
        let expected_prev = self.last.as_ref().map(|(_, h)| h);
        if row.prev_hash.as_ref() != expected_prev {
            return Err(broken(LinkProblem::Unlinked {
                previous: self.last.as_ref().map(|(id, _)| *id),
            }));
        }
        self.last = Some((row.id, hash.clone()));
        self.events += 1;
        Ok(())
    }

    pub(super) fn report(
        self,
        broken: Option<BrokenLink>,
        expected_head_at: Option<i64>,
    ) -> ChainReport {
        ChainReport {
            events: self.events,
            head: self.last,
            broken,
            expected_head_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, prev: Option<&str>) -> ChainedRow {
        let mut row = ChainedRow {
            id,
            org_id: Some(1),
            at: 1_700_000_000 + id,
            actor: "alice".into(),
            actor_addr: None,
            action: "key.created".into(),
            target_kind: "key".into(),
            target_id: format!("K{id}"),
            detail: Some("access: all".into()),
            prev_hash: prev.map(str::to_owned),
            hash: None,
        };
        row.hash = Some(row.expected_hash());
        row
    }

    fn chain(n: i64) -> Vec<ChainedRow> {
        let mut rows: Vec<ChainedRow> = Vec::new();
        for id in 1..=n {
            let prev = rows.last().and_then(|r| r.hash.clone());
            rows.push(row(id, prev.as_deref()));
        }
        rows
    }

    fn first_break(rows: &[ChainedRow]) -> Option<BrokenLink> {
        let mut v = Verifier::default();
        rows.iter().find_map(|r| v.check(r).err())
    }

    #[test]
    fn a_fresh_chain_holds() {
        assert_eq!(first_break(&chain(5)), None);
    }

    #[test]
    fn null_and_empty_hash_differently() {
        let mut a = row(1, None);
        a.detail = None;
        let mut b = a.clone();
        b.detail = Some(String::new());
        assert_ne!(a.expected_hash(), b.expected_hash());
    }

    #[test]
    fn field_boundaries_are_part_of_the_hash() {
        let mut a = row(1, None);
        (a.target_kind, a.target_id) = ("ke".into(), "yK1".into());
        let b = row(1, None);
        assert_ne!(a.expected_hash(), b.expected_hash());
    }

    #[test]
    fn each_kind_of_tampering_is_named_at_its_row() {
        let mut edited = chain(4);
        edited[2].detail = Some("access: github".into());
        assert_eq!(
            first_break(&edited),
            Some(BrokenLink {
                row_id: 3,
                problem: LinkProblem::Edited
            })
        );

        let mut deleted = chain(4);
        deleted.remove(1);
        assert_eq!(
            first_break(&deleted),
            Some(BrokenLink {
                row_id: 3,
                problem: LinkProblem::Unlinked { previous: Some(1) }
            })
        );

        let mut first_gone = chain(3);
        first_gone.remove(0);
        assert_eq!(
            first_break(&first_gone),
            Some(BrokenLink {
                row_id: 2,
                problem: LinkProblem::Unlinked { previous: None }
            })
        );

        let mut unhashed = chain(3);
        unhashed[1].hash = None;
        assert_eq!(
            first_break(&unhashed).map(|b| b.problem),
            Some(LinkProblem::Unhashed)
        );
    }
}
