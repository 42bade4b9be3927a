//! Callbacks: when a job finishes with an event its caller asked for (`completed`, `failed`),
//! `POST {"type": "job.completed" | "job.failed", "job": <job object>}` to its URL with Standard
//! Webhooks headers (`webhook-id`, `webhook-timestamp`, and `webhook-signature: v1,<base64
//! HMAC-SHA256>` when the job has a secret), signed by the `standardwebhooks` crate.
//!
//! A delivery is retried on a non-2xx answer or a transport failure after each wait of the
//! schedule (1, 2, 4, 8, 16 s), five attempts in all (the fifth failure ends it, so its 16 s
//! wait is never slept); its state is the job row's notification fields,
//! committed after every attempt, so a delivery pending at shutdown resumes after a restart
//! where it left off. The `webhook-id` is the same for every attempt (`msg_<job id>`), so a
//! receiver can drop duplicates. Delivery never changes the job's own status.
//!
//! Where a callback may go is `destinations.rs`'s rule, checked again before every attempt and
//! inside the client's resolver; redirects are not followed. A job object says only `HTTP
//! <status>` or `delivery failed`: nothing that would tell a caller whether some port is open.
//! The detail goes to the service's log.

use std::sync::Arc;

use super::destinations;
use super::service::Service;
use super::store::{self, Notification, COMPLETED, FAILED};

const PENDING: &str = "pending";
const SENT: &str = "sent";
const GAVE_UP: &str = "failed";
const SKIPPED: &str = "skipped";

/// The job `id` just finished: start its delivery if its callback wants this event.
pub(crate) fn on_finished(service: &Arc<Service>, id: &str) {
    let Ok(Some(row)) = service.store.get(id) else {
        return;
    };
    let Some(callback) = &row.callback else {
        return;
    };
    if row.notification.status.is_some() {
        return;
    }
    let event = match row.status.as_str() {
        COMPLETED => "completed",
        FAILED => "failed",
        _ => "",
    };
    let status = if callback.events.iter().any(|e| e == event) {
        PENDING
    } else {
        SKIPPED
    };
    let notification = Notification {
        status: Some(status.to_string()),
        ..Notification::default()
    };
    if let Err(e) = service.store.set_notification(id, &notification) {
        service.log.line(&format!("job {id} callback: {e}"));
        return;
    }
    if status == PENDING {
        spawn_delivery(service, id);
    }
}

pub(crate) fn spawn_delivery(service: &Arc<Service>, id: &str) {
    tokio::spawn(deliver(service.clone(), id.to_string()));
}

async fn deliver(service: Arc<Service>, id: String) {
    loop {
        let Ok(Some(row)) = service.store.get(&id) else {
            return;
        };
        let Some(callback) = row.callback.clone() else {
            return;
        };
        if row.notification.status.as_deref() != Some(PENDING) {
            return;
        }
        let event = if row.status == COMPLETED {
            "job.completed"
        } else {
            "job.failed"
        };
        let body = serde_json::json!({"type": event, "job": row.to_json(&service.public_base)});
        let payload = body.to_string();
        let msg_id = format!("msg_{id}");
        let result = send(&service, &callback, &msg_id, &payload).await;
        let mut n = row.notification.clone();
        n.attempts += 1;
        n.last_attempt_ms = Some(store::now_ms());
        let schedule = &service.config.callback_delays;
        match result {
            Ok(()) => {
                n.status = Some(SENT.into());
                n.error = None;
                n.sent_ms = n.last_attempt_ms;
            }
            Err(error) => {
                n.error = Some(error);
                if n.attempts as usize >= schedule.len().max(1) {
                    n.status = Some(GAVE_UP.into());
                }
            }
        }
        if let Err(e) = service.store.set_notification(&id, &n) {
            service.log.line(&format!("job {id} callback: {e}"));
            return;
        }
        let state = n.status.as_deref().unwrap_or_default();
        service.log.line(&format!(
            "job {id} callback {event} attempt {}: {}",
            n.attempts,
            match (&n.error, state) {
                (None, _) => "delivered".to_string(),
                (Some(e), GAVE_UP) => format!("{e}; giving up"),
                (Some(e), _) => format!("{e}; will retry"),
            }
        ));
        if state != PENDING {
            return;
        }
        let wait = schedule
            .get(n.attempts as usize - 1)
            .copied()
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}

async fn send(
    service: &Service,
    callback: &store::Callback,
    msg_id: &str,
    payload: &str,
) -> Result<(), String> {
    const FAILED: &str = "delivery failed";
    if let Err(why) = destinations::check_url(&callback.url, service.config.allow_private_callbacks)
    {
        service
            .log
            .line(&format!("callback {msg_id} refused: {why}"));
        return Err(FAILED.into());
    }
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = service
        .http
        .post(&callback.url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("codex-imagen/", env!("CARGO_PKG_VERSION")),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_ID, msg_id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        );
    if let Some(secret) = &callback.secret {
        let hook = if secret.starts_with("whsec_") {
            standardwebhooks::Webhook::new(secret)
        } else {
            standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
        }
        .map_err(|e| format!("the callback secret cannot be used: {e}"))?;
        let signature = hook
            .sign(msg_id, timestamp, payload.as_bytes())
            .map_err(|e| format!("cannot sign the callback: {e}"))?;
        request = request.header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature);
    }
    match request.body(payload.to_string()).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(e) => {
            // Without the URL: it may carry credentials.
            service
                .log
                .line(&format!("callback {msg_id}: {}", e.without_url()));
            Err(FAILED.into())
        }
    }
}
