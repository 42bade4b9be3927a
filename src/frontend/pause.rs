//! Waiting out a usage limit before sending (issue #22): every `--pool` account on cooldown, or
//! the one account's limit. For front-ends that keep running (the MCP server); the one-shot CLI
//! and batch report the limit instead.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::shared::Engine;

/// Sleep until the engine is no longer paused (looking again at least every 30 s, so a
/// cooldown lifted by another process is noticed). False when `cancel` fired first.
pub(crate) async fn wait_while_paused(engine: &Engine, cancel: &CancellationToken) -> bool {
    while let Some(until) = engine.paused_until() {
        let left = (until - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(30))
            + Duration::from_millis(50);
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(left) => {}
        }
    }
    true
}
