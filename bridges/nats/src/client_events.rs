//! The NATS client's connection events: counted in the bridge's stats,
//! logged, and the last connection error kept to explain a failed start.
//!
//! Connects and disconnects are not counted here: the client drops events
//! when its event queue is full (a flood of slow-consumer events fills it),
//! so they come from the client's own statistics and state instead
//! ([`connection_counts`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, ServerError};

use crate::stats::{warn_counted, ClientCounters};

/// What the event callback of one client records.
#[derive(Default)]
pub(crate) struct ClientEvents {
    pub counters: ClientCounters,
    last_error: Mutex<Option<String>>,
    /// The connects and disconnects of clients replaced by a new one.
    retired_connects: AtomicU64,
    retired_disconnects: AtomicU64,
}

impl ClientEvents {
    /// The last connection error the client reported.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps the counts of `client`, which died and is being replaced: its
    /// connection counts as lost.
    pub(crate) fn retire(&self, client: &Client) {
        let (connects, disconnects) = connection_counts(client);
        self.retired_connects.fetch_add(connects, Ordering::Relaxed);
        self.retired_disconnects.fetch_add(
            disconnects.max(connects.saturating_sub(1)) + 1,
            Ordering::Relaxed,
        );
    }

    /// The connects and disconnects of `client`, with those of the clients
    /// it replaced.
    pub(crate) fn connection_counts(&self, client: &Client) -> (u64, u64) {
        let (connects, disconnects) = connection_counts(client);
        (
            connects + self.retired_connects.load(Ordering::Relaxed),
            disconnects + self.retired_disconnects.load(Ordering::Relaxed),
        )
    }

    fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

/// `options` with an event callback that records and logs for bridge
/// `name`'s connection `role` ("main" or "consumer").
pub(crate) fn install(
    options: ConnectOptions,
    name: &str,
    role: &'static str,
    events: Arc<ClientEvents>,
) -> ConnectOptions {
    let name: Arc<str> = name.into();
    options.event_callback(move |event| {
        let events = Arc::clone(&events);
        let name = Arc::clone(&name);
        async move { record(&name, role, &events, &event) }
    })
}

/// A client's connects and disconnects: every connection but the current
/// one was lost.
pub(crate) fn connection_counts(client: &Client) -> (u64, u64) {
    let connects = client.statistics().connects.load(Ordering::Relaxed);
    let current = u64::from(client.connection_state() == State::Connected);
    (connects, connects.saturating_sub(current))
}

fn record(name: &str, role: &str, events: &ClientEvents, event: &Event) {
    let counters = &events.counters;
    match event {
        Event::Connected => tracing::info!(bridge = name, role, "switchboard-nats: connected"),
        Event::Disconnected => tracing::warn!(
            bridge = name,
            role,
            "switchboard-nats: disconnected; at-most-once exports are dropped (counted as \
             unavailable) and at-least-once exports retried until the client reconnects"
        ),
        Event::SlowConsumer(sid) => {
            warn_counted!(
                &counters.slow_consumer,
                bridge = name,
                role,
                sid,
                "switchboard-nats: the client dropped a message for a full subscription buffer \
                 (slow consumer); raise ConnectOptions::subscription_capacity or import less"
            );
        }
        Event::ServerError(error) => {
            if *error == ServerError::AuthorizationViolation {
                events.set_last_error(error.to_string());
            }
            warn_counted!(
                &counters.server_errors,
                bridge = name,
                role,
                %error,
                "switchboard-nats: server error"
            );
        }
        // Client errors repeat on every reconnect attempt: the disconnect was logged already.
        Event::ClientError(error) => {
            events.set_last_error(error.to_string());
            tracing::debug!(bridge = name, role, %error, "switchboard-nats: client error");
        }
        other => {
            tracing::info!(bridge = name, role, event = %other, "switchboard-nats: client event");
        }
    }
}
