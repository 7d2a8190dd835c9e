use std::sync::Arc;

use super::*;

/// A fresh store, for the conformance suite; nothing needs cleaning up after it.
async fn fresh() -> ((), Arc<dyn JobStore>) {
    ((), Arc::new(MemoryStore::new()))
}

crate::conformance_tests!(fresh);

#[test]
fn every_store_has_its_own_instance_id() {
    let ids: std::collections::HashSet<String> = (0..1000)
        .map(|_| MemoryStore::new().instance_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 1000);
}
