//! A `tracing` subscriber that records every event the bus logs, for the
//! tests of its warnings.
//!
//! [`captured`] installs it for the calling thread only (`with_default`), so
//! tests running in parallel do not see each other's events.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};

/// One captured `tracing` event.
#[derive(Debug, Clone)]
pub struct Captured {
    pub level: Level,
    pub target: String,
    pub fields: HashMap<String, String>,
}

impl Captured {
    /// The value of field `name` (`Debug`-formatted unless it is a string);
    /// empty if the event has none.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// The event's message.
    pub fn message(&self) -> &str {
        self.field("message")
    }
}

/// Runs `f` with a capturing subscriber on this thread and returns every
/// event logged meanwhile, in order.
pub fn captured(f: impl FnOnce()) -> Vec<Captured> {
    let capture = Capture::default();
    let events = Arc::clone(&capture.events);
    tracing::subscriber::with_default(capture, f);
    let events = events.lock().unwrap().clone();
    events
}

/// The warnings among `events`.
pub fn warnings(events: &[Captured]) -> Vec<&Captured> {
    events.iter().filter(|e| e.level == Level::WARN).collect()
}

/// A minimal `tracing` subscriber that records every event.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Ask every time: other tests' subscribers must not change what this one sees.
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
