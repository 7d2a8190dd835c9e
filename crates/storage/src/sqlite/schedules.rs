//! Schedule firings in SQLite: one row per fired slot, keyed by template and slot.

use holt_domain::JobToken;
use rusqlite::{Transaction, params};

use crate::{FIRING_HISTORY_MS, Firing, StoreError};

/// Records a firing unless one of the template at that slot or a later one is recorded: `false`
/// then, with nothing written. Forgets the template's firings older than the history kept.
pub(super) fn fire(
    tx: &Transaction<'_>,
    firing: &Firing,
    job: Option<JobToken>,
) -> Result<bool, StoreError> {
    let job_id = job.map(|t| t.id() as i64);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO schedule_firings (template, slot_ms, recorded_ms, job_id)
             SELECT ?1, ?2, ?3, ?4
             WHERE NOT EXISTS (
                 SELECT 1 FROM schedule_firings WHERE template = ?1 AND slot_ms >= ?2)",
        )?
        .execute(params![
            firing.template.as_str(),
            firing.slot_ms,
            firing.at_ms,
            job_id
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM schedule_firings WHERE template = ?1 AND slot_ms < ?2")?
        .execute(params![
            firing.template.as_str(),
            firing.slot_ms.saturating_sub(FIRING_HISTORY_MS)
        ])?;
    Ok(true)
}

/// Names the job created for a firing just recorded.
pub(super) fn link(tx: &Transaction<'_>, firing: &Firing, job: JobToken) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE schedule_firings SET job_id = ?3 WHERE template = ?1 AND slot_ms = ?2",
    )?
    .execute(params![
        firing.template.as_str(),
        firing.slot_ms,
        job.id() as i64
    ])?;
    Ok(())
}
