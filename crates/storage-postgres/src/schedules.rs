//! Schedule firings on PostgreSQL: one row per fired slot, keyed by template and slot, written
//! in the writer's transaction together with what the slot produced. Of several nodes firing
//! one slot, the first to insert its row wins; the others' inserts wait for that commit and then
//! insert nothing.

use deadpool_postgres::Transaction;
use holt_domain::{JobToken, TemplateName, TriggerSource};
use holt_storage::{Admitted, FIRING_HISTORY_MS, Firing, NewJob, Policy, StoreError};

use crate::PgStore;
use crate::committed::Event;
use crate::writer::{Command, create_job_from};

/// What a firing produces, besides its row.
#[derive(Debug)]
pub(crate) enum Fire {
    /// Nothing new: the policy refused, or this job stands for the slot.
    Record(Option<JobToken>),
    /// A job, on a store used by one node.
    Create(NewJob),
    /// A job admitted under the cluster's policy.
    Admit(NewJob, Policy),
}

/// Applies a firing in the writer's transaction: `None` when the slot (or a later one of the
/// template) is recorded already, and then nothing is written.
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    firing: &Firing,
    fire: &Fire,
    events: &mut Vec<Event>,
    queue: &mut crate::cluster::QueueCount,
) -> Result<Result<Option<Admitted>, StoreError>, tokio_postgres::Error> {
    if let Fire::Admit(..) = fire {
        // Admission takes the queue's lock anyway; taken before the firing's row, every firing
        // holds the two in the same order, so two nodes' firings wait for each other instead of
        // deadlocking.
        crate::cluster::lock_queue(tx).await?;
    }
    let existing = match fire {
        Fire::Record(existing) => *existing,
        Fire::Create(_) | Fire::Admit(..) => None,
    };
    if !record(tx, firing, existing).await? {
        return Ok(Ok(None));
    }
    let admitted = match fire {
        Fire::Record(_) => return Ok(Ok(Some(Admitted::AtLimit))),
        Fire::Create(job) => {
            let mut job = job.clone();
            job.idempotency = None;
            match create_job_from(tx, &job, TriggerSource::Schedule).await? {
                Ok(created) => Admitted::Created(created.token),
                Err(e) => return Ok(Err(e)),
            }
        }
        Fire::Admit(job, policy) => {
            let mut job = job.clone();
            job.idempotency = None;
            match crate::cluster::admit(tx, &job, policy, TriggerSource::Schedule, queue).await? {
                Ok(admitted) => admitted,
                Err(e) => return Ok(Err(e)),
            }
        }
    };
    let job = match admitted {
        Admitted::Created(token) => {
            if let Fire::Admit(..) = fire {
                events.push(Event::Created { token });
            }
            Some(token)
        }
        Admitted::Existing(token) => Some(token),
        Admitted::AtLimit | Admitted::QueueFull => None,
    };
    if let Some(token) = job {
        let link = tx
            .prepare_cached(
                "UPDATE schedule_firings SET job_id = $3 WHERE template = $1 AND slot_ms = $2",
            )
            .await?;
        tx.execute(
            &link,
            &[
                &firing.template.as_str(),
                &firing.slot_ms,
                &(token.id() as i64),
            ],
        )
        .await?;
    }
    Ok(Ok(Some(admitted)))
}

/// Inserts the firing's row unless the template has one at that slot or a later one; forgets
/// the template's firings older than the history kept.
async fn record(
    tx: &Transaction<'_>,
    firing: &Firing,
    job: Option<JobToken>,
) -> Result<bool, tokio_postgres::Error> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO schedule_firings (template, slot_ms, recorded_ms, job_id)
             SELECT $1, $2, $3, $4
             WHERE NOT EXISTS (
                 SELECT 1 FROM schedule_firings WHERE template = $1 AND slot_ms >= $2)
             ON CONFLICT (template, slot_ms) DO NOTHING",
        )
        .await?;
    let job_id = job.map(|t| t.id() as i64);
    let inserted = tx
        .execute(
            &insert,
            &[
                &firing.template.as_str(),
                &firing.slot_ms,
                &firing.at_ms,
                &job_id,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let forget = tx
        .prepare_cached("DELETE FROM schedule_firings WHERE template = $1 AND slot_ms < $2")
        .await?;
    tx.execute(
        &forget,
        &[
            &firing.template.as_str(),
            &firing.slot_ms.saturating_sub(FIRING_HISTORY_MS),
        ],
    )
    .await?;
    Ok(true)
}

impl PgStore {
    /// Sends a firing to the writer.
    pub(crate) async fn fire(
        &self,
        firing: &Firing,
        fire: Fire,
    ) -> Result<Option<Admitted>, StoreError> {
        let firing = firing.clone();
        self.request(|ack| Command::Fire { firing, fire, ack })
            .await
    }

    /// The template's latest fired slot.
    pub(crate) async fn latest_firing(
        &self,
        template: &TemplateName,
    ) -> Result<Option<i64>, StoreError> {
        let row = self
            .read_opt(
                "SELECT max(slot_ms) FROM schedule_firings WHERE template = $1",
                &[&template.as_str()],
            )
            .await?;
        Ok(row.and_then(|row| row.get::<_, Option<i64>>(0)))
    }
}
