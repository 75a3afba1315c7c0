//! Where a protection's audit entries go: the ledger itself (a command's one job), or a
//! service's group-commit appender (many callers, one transaction per turn). A decision
//! that audits takes either, so the faces never append themselves.

use std::future::Future;

use ledger::{Ledger, NewEntry};

/// Appends one audit entry and answers its sequence number.
pub trait AuditSink: Sync {
    /// Appends `entry`.
    fn append(&self, entry: NewEntry) -> impl Future<Output = ledger::Result<i64>> + Send;
}

impl AuditSink for Ledger {
    async fn append(&self, entry: NewEntry) -> ledger::Result<i64> {
        Ledger::append(self, entry).await.map(|e| e.seq)
    }
}

impl AuditSink for ledger::appender::Appender {
    async fn append(&self, entry: NewEntry) -> ledger::Result<i64> {
        ledger::appender::Appender::append(self, entry).await
    }
}
