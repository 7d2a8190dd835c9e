//! A database's rows as they are stored, for copying a whole database from one backend to
//! another (`holtd migrate`): every job with its token, status and times, its log chunks, the
//! idempotency keys and the infrastructure model. The forms are those of [`crate::backend`], so
//! rows are copied without being decoded. Secret values stay sealed: the target is read with
//! the same secrets key.

/// One job's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// The job's token.
    pub id: i64,
    pub template: String,
    pub plan: String,
    /// The variables in their stored form (secret values sealed).
    pub variables: String,
    /// The status code.
    pub status: i64,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// What triggered it, as its stored code.
    pub source: i64,
    /// Its outputs in their stored form (`backend::encode_outputs`), if it recorded any.
    pub outputs: Option<String>,
}

/// One log chunk's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    pub job_id: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub body: String,
    pub entries: String,
}

/// One idempotency key's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key: String,
    pub fingerprint: String,
    pub job_id: i64,
    pub created_ms: i64,
}

/// One server, role or environment, as its stored JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraRow {
    pub kind: String,
    pub name_key: String,
    pub body: String,
}

/// A batch of rows to copy: jobs, then what belongs to them, then the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub jobs: Vec<JobRow>,
    pub chunks: Vec<ChunkRow>,
    pub keys: Vec<KeyRow>,
    pub infra: Vec<InfraRow>,
}
