//! Job ids waiting for a worker, in order, bounded by `--queue`. The store holds the truth; the
//! queue is its order in memory.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::error::ApiError;
use crate::foundation::sync::lock;

/// Job ids waiting for a worker, oldest first. The store holds the truth; this is its order.
#[derive(Default)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<String>>,
    notify: Notify,
}

impl Queue {
    /// Push `id` when fewer than `limit` wait, after `record` (the store insert) succeeded;
    /// both happen under the queue's lock, so the limit holds under concurrent admissions.
    pub(crate) fn push_with(
        &self,
        limit: usize,
        id: &str,
        record: impl FnOnce() -> Result<(), ApiError>,
    ) -> Result<bool, ApiError> {
        let mut items = lock(&self.items);
        if items.len() >= limit {
            return Ok(false);
        }
        record()?;
        items.push_back(id.to_string());
        drop(items);
        self.notify.notify_one();
        Ok(true)
    }

    /// Jobs found queued at start-up: never refused.
    pub(crate) fn push_recovered(&self, id: &str) {
        lock(&self.items).push_back(id.to_string());
        self.notify.notify_one();
    }

    /// A job taken during a pause goes back to the head of the line.
    pub(crate) fn push_front(&self, id: &str) {
        lock(&self.items).push_front(id.to_string());
        self.notify.notify_one();
    }

    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut items = lock(&self.items);
        let before = items.len();
        items.retain(|queued| queued != id);
        before != items.len()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.items).len()
    }

    pub(crate) async fn next(&self) -> String {
        loop {
            if let Some(id) = lock(&self.items).pop_front() {
                return id;
            }
            // `notify_one` keeps a permit when no worker waits, so no push is missed.
            self.notify.notified().await;
        }
    }
}
