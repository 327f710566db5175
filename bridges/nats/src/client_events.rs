//! The NATS client's connection events: counted in the bridge's stats and
//! logged.

use std::sync::Arc;

use async_nats::{ConnectOptions, Event};

use crate::stats::{bump, ClientCounters};

/// `options` with an event callback that counts and logs for bridge `name`.
pub(crate) fn install(
    options: ConnectOptions,
    name: &str,
    counters: Arc<ClientCounters>,
) -> ConnectOptions {
    let name: Arc<str> = name.into();
    options.event_callback(move |event| {
        let counters = Arc::clone(&counters);
        let name = Arc::clone(&name);
        async move { record(&name, &counters, &event) }
    })
}

fn record(name: &str, counters: &ClientCounters, event: &Event) {
    match event {
        Event::Connected => {
            bump(&counters.connects);
            tracing::info!(bridge = name, "switchboard-nats: connected");
        }
        Event::Disconnected => {
            bump(&counters.disconnects);
            tracing::warn!(
                bridge = name,
                "switchboard-nats: disconnected; at-most-once exports are dropped (counted as \
                 unavailable) and at-least-once exports retried until the client reconnects"
            );
        }
        Event::SlowConsumer(sid) => {
            bump(&counters.slow_consumer);
            tracing::warn!(
                bridge = name,
                sid,
                "switchboard-nats: the client dropped a message for a full subscription buffer \
                 (slow consumer); raise ConnectOptions::subscription_capacity or import less"
            );
        }
        Event::ServerError(error) => {
            bump(&counters.server_errors);
            tracing::warn!(bridge = name, %error, "switchboard-nats: server error");
        }
        // Client errors repeat on every reconnect attempt: the disconnect was logged already.
        Event::ClientError(error) => {
            tracing::debug!(bridge = name, %error, "switchboard-nats: client error");
        }
        other => tracing::info!(bridge = name, event = %other, "switchboard-nats: client event"),
    }
}
