//! A faithful, naive port of the Go event bus (`pkg/events` of the HAProxy
//! Template Ingress Controller; see `docs/design.md`, "Origin"), as a
//! benchmark baseline.
//!
//! This is what a direct translation of the Go original looks like in Rust
//! before any of switchboard's choices: one `RwLock` around one
//! `Vec<Subscriber>` that every publish read-locks and walks in full; typed
//! subscribers holding a `HashSet<String>` of event-type names that is checked
//! (SipHash, std's default) on every publish; drops counted in `AtomicU64`s
//! and, for critical subscribers, reported to a drop callback that lives under
//! the same lock; a pre-start buffer behind a `Mutex`. The queues are the same
//! crossbeam bounded channels switchboard uses, offered with `try_send`, so
//! the difference measured is the bus logic and nothing else.
//!
//! It is deliberately not tuned, but it is not a straw man either: the filter
//! label is computed once at subscribe time (as switchboard does), the lock is
//! std's futex-based `RwLock`, and publish allocates nothing.

#![allow(dead_code)] // each benchmark uses a different part of the port

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use switchboard::Event;

/// What the drop callback is told (Go's `DropInfo`).
pub struct PortDropInfo<'a> {
    pub event_type: &'a str,
    pub subscriber_name: &'a str,
    pub buffer_size: usize,
    pub event_types: &'a str,
}

pub type PortDropCallback = Arc<dyn Fn(&PortDropInfo<'_>) + Send + Sync>;

struct PortSubscriber {
    id: u64,
    name: String,
    sender: Sender<Arc<dyn Event>>,
    buffer: usize,
    /// `None` for a universal subscriber; otherwise the accepted event types.
    types: Option<HashSet<String>>,
    /// The types joined by commas, for `PortDropInfo::event_types`.
    types_label: String,
    lossy: bool,
}

#[derive(Default)]
struct Shared {
    subscribers: Vec<PortSubscriber>,
    drop_callback: Option<PortDropCallback>,
}

/// The naive bus: `RwLock<Vec<Subscriber>>`.
#[derive(Default)]
pub struct RwLockBus {
    shared: RwLock<Shared>,
    started: AtomicBool,
    pre_start: Mutex<Vec<Arc<dyn Event>>>,
    next_id: AtomicU64,
    dropped_critical: AtomicU64,
    dropped_observability: AtomicU64,
}

/// A port subscription: the receiving end of the subscriber's channel.
pub struct PortSubscription {
    pub id: u64,
    pub receiver: Receiver<Arc<dyn Event>>,
}

impl RwLockBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(
        &self,
        name: &str,
        buffer: usize,
        types: Option<&[&str]>,
        lossy: bool,
    ) -> PortSubscription {
        let (sender, receiver) = bounded(buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let types_label = types.map(|t| t.join(",")).unwrap_or_default();
        let types = types.map(|t| t.iter().map(|s| (*s).to_owned()).collect());
        self.shared
            .write()
            .unwrap()
            .subscribers
            .push(PortSubscriber {
                id,
                name: name.to_owned(),
                sender,
                buffer,
                types,
                types_label,
                lossy,
            });
        PortSubscription { id, receiver }
    }

    /// Every event; a critical subscriber.
    pub fn subscribe(&self, name: &str, buffer: usize) -> PortSubscription {
        self.add(name, buffer, None, false)
    }

    /// Events whose `event_type()` is one of `types`; a critical subscriber.
    pub fn subscribe_types(&self, name: &str, buffer: usize, types: &[&str]) -> PortSubscription {
        self.add(name, buffer, Some(types), false)
    }

    /// Every event; drops only counted.
    pub fn subscribe_lossy(&self, name: &str, buffer: usize) -> PortSubscription {
        self.add(name, buffer, None, true)
    }

    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut shared = self.shared.write().unwrap();
        let before = shared.subscribers.len();
        shared.subscribers.retain(|s| s.id != id);
        shared.subscribers.len() != before
    }

    pub fn set_drop_callback(&self, callback: Option<PortDropCallback>) {
        self.shared.write().unwrap().drop_callback = callback;
    }

    /// Replays the pre-start buffer, then delivers directly.
    pub fn start(&self) {
        let mut buffer = self.pre_start.lock().unwrap();
        for event in buffer.drain(..) {
            self.deliver(&event);
        }
        self.started.store(true, Ordering::Release);
    }

    pub fn publish(&self, event: Arc<dyn Event>) -> usize {
        if !self.started.load(Ordering::Acquire) {
            let mut buffer = self.pre_start.lock().unwrap();
            if !self.started.load(Ordering::Acquire) {
                buffer.push(event);
                return 0;
            }
        }
        self.deliver(&event)
    }

    fn deliver(&self, event: &Arc<dyn Event>) -> usize {
        let shared = self.shared.read().unwrap();
        let event_type = event.event_type();
        let mut sent = 0;
        for subscriber in &shared.subscribers {
            if let Some(types) = &subscriber.types {
                if !types.contains(event_type) {
                    continue;
                }
            }
            match subscriber.sender.try_send(Arc::clone(event)) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(_)) if subscriber.lossy => {
                    self.dropped_observability.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => {
                    self.dropped_critical.fetch_add(1, Ordering::Relaxed);
                    if let Some(callback) = &shared.drop_callback {
                        callback(&PortDropInfo {
                            event_type,
                            subscriber_name: &subscriber.name,
                            buffer_size: subscriber.buffer,
                            event_types: &subscriber.types_label,
                        });
                    }
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        sent
    }

    pub fn dropped_critical(&self) -> u64 {
        self.dropped_critical.load(Ordering::Relaxed)
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_critical() + self.dropped_observability.load(Ordering::Relaxed)
    }
}
