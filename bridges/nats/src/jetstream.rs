//! The JetStream side of at-least-once delivery: one stream per prefix, one
//! durable pull consumer per importing bridge, and the prefix's dead-letter
//! stream.
//!
//! The stream captures the subjects of the at-least-once types only, not
//! all of `{prefix}.>`: at-most-once events and requests share the prefix,
//! and a stream capturing them would store the lossy traffic and answer
//! every request with an acknowledgement (so "no responders" could never be
//! detected). Each bridge adds the subjects of its at-least-once types to
//! the stream when it starts, and again if a publish finds none capturing
//! its subject.
//!
//! The consumer reads on a connection of its own: a message whose header
//! block the client cannot parse makes the client drop the connection it
//! arrived on (see [`dead_letter`](crate::dead_letter)), and that must not
//! cut off the bridge's other traffic.
//!
//! Only stream and consumer settings that nats-server 2.9 knows are used.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as ConsumerConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, ContextBuilder, GetStreamErrorKind};
use async_nats::jetstream::stream::{
    Config as StreamConfig, RawMessageErrorKind, State, StorageType, Stream,
};
use async_nats::jetstream::Context;
use async_nats::Client;

use crate::config::JetStreamOptions;
use crate::error::BridgeError;
use crate::resume;
use crate::stats::{warn_counted, ConsumerCounters};
use crate::subject::matches;

/// How often `ensure` re-reads and re-adds subjects that a concurrent
/// update of another bridge may have overwritten.
const ENSURE_ATTEMPTS: usize = 10;

/// How long a bridge waits before it creates again a stream it found gone,
/// and after it deleted a broken one. nats-server takes a deleted stream out
/// of the account before it moves the stream's directory away: a stream
/// created under the same name in between opens that directory, and loses it
/// with the old stream (it then acknowledges nothing, or stores what no
/// consumer can read). The deletion takes milliseconds; a second leaves
/// room for a loaded server, and for another bridge replacing the same
/// broken stream (see [`is_broken`]).
const RECREATE_AFTER: Duration = Duration::from_secs(1);

/// The stream of a prefix, as this bridge would create it.
#[derive(Clone)]
pub(crate) struct StreamSpec {
    pub context: Context,
    pub config: StreamConfig,
    /// Where broken streams replaced are counted.
    counters: Arc<ConsumerCounters>,
}

impl StreamSpec {
    pub(crate) fn new(
        context: Context,
        name: String,
        options: &JetStreamOptions,
        counters: Arc<ConsumerCounters>,
    ) -> Self {
        Self {
            counters,
            context,
            config: StreamConfig {
                name,
                storage: StorageType::File,
                num_replicas: options.replicas,
                max_age: options.max_age,
                duplicate_window: options.duplicate_window,
                ..Default::default()
            },
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Makes sure the stream exists and captures every subject of
    /// `subjects`, adding the missing ones to its configuration.
    ///
    /// Bridges starting at once may each read the subjects and write them
    /// back with only their own added; so each re-reads until it sees its
    /// subjects stored.
    pub(crate) async fn ensure(&self, subjects: &[String]) -> Result<Stream, async_nats::Error> {
        // A subject listed twice is refused by the server ("overlaps",
        // "duplicate subjects"): a bridge that exports and imports a type
        // names it twice.
        let mut wanted: Vec<String> = Vec::with_capacity(subjects.len());
        for subject in subjects {
            if !wanted.contains(subject) {
                wanted.push(subject.clone());
            }
        }
        let mut last_error: Option<async_nats::Error> = None;
        for _ in 0..ENSURE_ATTEMPTS {
            let mut config = self.config.clone();
            config.subjects.clone_from(&wanted);
            let stream = match self.context.get_or_create_stream(config).await {
                Ok(stream) => stream,
                Err(error) => {
                    last_error = Some(error.into());
                    continue;
                }
            };
            if is_broken(&stream).await {
                self.replace_broken(stream.cached_info().created).await?;
                continue;
            }
            let existing = &stream.cached_info().config;
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|subject| !existing.subjects.iter().any(|p| matches(p, subject)))
                .collect();
            if missing.is_empty() {
                return Ok(stream);
            }
            let mut updated = existing.clone();
            updated.subjects.extend(missing.into_iter().cloned());
            if let Err(error) = self.context.update_stream(updated).await {
                last_error = Some(error.into());
            }
        }
        Err(last_error.unwrap_or_else(|| {
            format!(
                "stream {} kept losing the subjects {wanted:?} to concurrent updates",
                self.name()
            )
            .into()
        }))
    }

    /// [`ensure`](Self::ensure) after the stream was lost (a publish found
    /// none capturing its subject, the consumer was deleted with it): if the
    /// stream is still gone, waits [`RECREATE_AFTER`] before creating it, so
    /// that the server has finished deleting the old one.
    pub(crate) async fn restore(&self, subjects: &[String]) -> Result<Stream, async_nats::Error> {
        match self.context.get_stream(self.name()).await {
            Ok(_) => {}
            Err(error) if is_stream_not_found(&error.kind()) => {
                tokio::time::sleep(RECREATE_AFTER).await;
            }
            Err(error) => return Err(error.into()),
        }
        self.ensure(subjects).await
    }

    /// Replaces the stream if it is broken (see [`is_broken`]): for an
    /// exporter whose publishes go unacknowledged, which a broken stream
    /// holding the old one's messages does forever. Once deleted, the next
    /// publish finds no stream and [`restore`](Self::restore)s it.
    pub(crate) async fn heal(&self) -> Result<(), async_nats::Error> {
        let stream = match self.context.get_stream(self.name()).await {
            Ok(stream) => stream,
            // Gone: a publish finds out and restores it.
            Err(error) if is_stream_not_found(&error.kind()) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        if is_broken(&stream).await {
            self.replace_broken(stream.cached_info().created).await?;
        }
        Ok(())
    }

    /// Deletes the broken stream created at `created`, unless it is already
    /// gone or replaced, then waits [`RECREATE_AFTER`]: a bridge that saw the
    /// same broken stream and deletes it by name too must not delete the
    /// replacement.
    async fn replace_broken(&self, created: time::OffsetDateTime) -> Result<(), async_nats::Error> {
        let name = self.name();
        let still_broken = match self.context.get_stream(name).await {
            Ok(stream) => stream.cached_info().created == created && is_broken(&stream).await,
            Err(error) if is_stream_not_found(&error.kind()) => false,
            Err(error) => return Err(error.into()),
        };
        let deleted = still_broken
            && match self.context.delete_stream(name).await {
                Ok(_) => true,
                // Another bridge deleted it first, and counts it.
                Err(error) if is_stream_not_found(&error.kind()) => false,
                Err(error) => return Err(error.into()),
            };
        if deleted {
            warn_counted!(
                each: &self.counters.streams_replaced,
                stream = %name,
                %created,
                "switchboard-nats: the stream was created while the server was still deleting \
                 the stream of the same name, and lost its directory with it (it holds only the \
                 old stream's numbers or messages, and would store nothing readable): deleted, \
                 to be created again"
            );
        }
        tokio::time::sleep(RECREATE_AFTER).await;
        Ok(())
    }
}

/// Whether the server answered that the stream does not exist (the same
/// error kind for a lookup and a deletion).
pub(crate) fn is_stream_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(
        kind,
        GetStreamErrorKind::JetStream(error)
            if error.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Whether a stream is broken: created (by anyone) while nats-server was
/// still deleting the stream of the same name, it opened the old stream's
/// directory, which the deletion then moved away, so that it acknowledges
/// nothing or stores what no consumer can read. Its description gives it
/// away (see [`judge`]); one that still counts messages is broken only if
/// its first message cannot be read, which a working stream's always can.
async fn is_broken(stream: &Stream) -> bool {
    let info = stream.cached_info();
    match judge(info.created, &info.state) {
        Store::Sound => false,
        Store::Lost => true,
        Store::Suspect => matches!(
            stream.get_raw_message(info.state.first_sequence).await,
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound
        ),
    }
}

/// What a stream's description says of its store.
#[derive(Debug, PartialEq, Eq)]
enum Store {
    /// Nothing wrong.
    Sound,
    /// The old stream's purged numbers: no message, a last sequence above
    /// zero, and a last message older than the stream itself, which no
    /// working stream has. (A stream created with a first sequence of its
    /// own has no last message time; one purged keeps the time of a message
    /// it stored.)
    Lost,
    /// Messages older than the stream itself: the old stream's, or a
    /// working stream's under a wall clock set back since it was created.
    Suspect,
}

fn judge(created: time::OffsetDateTime, state: &State) -> Store {
    // A stream that never stored a message has no last message time (Go's
    // zero time, year 1), whatever its sequence numbers say.
    let older_than_itself =
        state.last_timestamp > time::OffsetDateTime::UNIX_EPOCH && state.last_timestamp < created;
    match (older_than_itself, state.messages) {
        (false, _) => Store::Sound,
        (true, 0) => Store::Lost,
        (true, _) => Store::Suspect,
    }
}

/// What the bridge's JetStream tasks need.
pub(crate) struct JetStream {
    /// The prefix's stream, on the bridge's main connection (exports).
    pub spec: StreamSpec,
    /// The importer's consumer, if the bridge imports at-least-once types.
    pub consumer: Option<Consumer>,
}

/// A durable consumer, with what it takes to find it again, or create it
/// again where the importer left off, when the server lost it.
pub(crate) struct Consumer {
    /// The stream, on the consumer's own connection.
    pub spec: StreamSpec,
    /// The at-least-once subjects the stream must capture.
    pub subjects: Vec<String>,
    pub durable: String,
    pub config: ConsumerConfig,
    pub consumer: PullConsumer,
    /// When the stream the consumer reads was created: another time means
    /// a new stream, whose sequence numbers start again at 1.
    pub stream_created: time::OffsetDateTime,
    /// The stream sequences the importer handled.
    pub handled: Handled,
}

/// The stream sequences an importer handled: a floor up to which every one
/// was (or was skipped by starting after it, or acknowledged on the server),
/// and those handled above it. A message counts once it is acknowledged: an
/// event imported into the bus, once complete. A message held back, whose
/// event is not complete yet, lost in transit or turned back keeps the
/// floor below it, so a consumer created again resumes at the first one not
/// handled.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    floor: u64,
    ahead: BTreeSet<u64>,
}

impl Handled {
    pub(crate) fn starting_after(floor: u64) -> Self {
        Self {
            floor,
            ahead: BTreeSet::new(),
        }
    }

    /// The first stream sequence that may not have been handled.
    pub(crate) fn resume_at(&self) -> u64 {
        self.floor.saturating_add(1)
    }

    /// Records that stream message `sequence` was handled.
    pub(crate) fn insert(&mut self, sequence: u64) {
        if sequence == self.floor + 1 {
            self.advance_to(sequence);
        } else if sequence > self.floor {
            self.ahead.insert(sequence);
        }
    }

    /// Raises the floor to `sequence` (if higher), and past what was
    /// handled beyond it.
    pub(crate) fn advance_to(&mut self, sequence: u64) {
        self.floor = self.floor.max(sequence);
        self.ahead = self.ahead.split_off(&(self.floor + 1));
        while self.ahead.first() == Some(&(self.floor + 1)) {
            self.ahead.pop_first();
            self.floor += 1;
        }
    }

    /// Whether stream message `sequence` was handled.
    pub(crate) fn contains(&self, sequence: u64) -> bool {
        sequence <= self.floor || self.ahead.contains(&sequence)
    }
}

/// What the server had forgotten, found by [`Consumer::recover`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Forgotten {
    /// Nothing: the consumer was still there.
    Nothing,
    /// The consumer was gone and is created again after the last message
    /// the importer handled; `removed` messages after that are no longer in
    /// the stream (expired, purged or deleted).
    Consumer { removed: u64 },
    /// The stream itself is a new one: the consumer reads it from its
    /// start; what the old stream held beyond the importer's last message
    /// is gone (counted per publisher as missed when their next event arrives).
    Stream,
}

impl Consumer {
    /// Finds the consumer again after an error, creating the stream and the
    /// consumer if the server no longer has them.
    pub(crate) async fn recover(&mut self) -> Result<Forgotten, async_nats::Error> {
        let mut stream = self.spec.restore(&self.subjects).await?;
        match stream.consumer_info(&self.durable).await {
            Ok(_) => {
                self.consumer = stream.get_consumer(&self.durable).await?;
                return Ok(Forgotten::Nothing);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                ) => {}
            Err(error) => return Err(error.into()),
        }
        let info = stream.info().await?.clone();
        let new_stream = info.created != self.stream_created;
        let start = if new_stream {
            1
        } else {
            self.handled.resume_at()
        };
        let removed = if new_stream {
            0
        } else {
            info.state.first_sequence.saturating_sub(start)
        };
        let mut config = self.config.clone();
        config.deliver_policy = DeliverPolicy::ByStartSequence {
            start_sequence: start,
        };
        self.consumer = stream.create_consumer(config).await?;
        self.stream_created = info.created;
        Ok(if new_stream {
            Forgotten::Stream
        } else {
            Forgotten::Consumer { removed }
        })
    }

    /// Raises the floor to the consumer's acknowledgement floor on the
    /// server, which also passes messages deleted from the stream (that
    /// never reach the importer and would hold the floor back forever).
    pub(crate) async fn sync_floor(&mut self) -> Result<(), async_nats::Error> {
        let info = self.consumer.info().await?;
        self.handled.advance_to(info.ack_floor.stream_sequence);
        Ok(())
    }

    /// Forgets the old stream's sequences: the consumer reads a new stream
    /// from its start.
    pub(crate) fn restart(&mut self) {
        self.handled = Handled::default();
    }
}

/// Fails if the server answers that it has no JetStream for this account.
pub(crate) async fn check(client: &Client) -> Result<(), BridgeError> {
    let failed = |source: async_nats::Error| BridgeError::JetStream {
        what: "asking the server for this account's JetStream information".to_owned(),
        source,
    };
    match client.request("$JS.API.INFO", bytes::Bytes::new()).await {
        Ok(answer) => {
            let answer: serde_json::Value =
                serde_json::from_slice(&answer.payload).map_err(|error| failed(error.into()))?;
            match answer.get("error") {
                Some(error) => Err(BridgeError::NoJetStream {
                    detail: error.to_string(),
                }),
                None => Ok(()),
            }
        }
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
            Err(BridgeError::NoJetStream {
                detail: "no responders on the JetStream API".to_owned(),
            })
        }
        Err(error) => Err(failed(error.into())),
    }
}

/// A JetStream context whose awaited publish acknowledgements and API
/// calls time out after the options' `ack_timeout`.
pub(crate) fn context(client: &Client, options: &JetStreamOptions) -> Context {
    ContextBuilder::new()
        .timeout(options.ack_timeout)
        .build(client.clone())
}

/// Ensures the stream `stream_name` with the `subjects` of the bridge
/// `name`'s at-least-once types and, given the `consumer_client`, its
/// durable consumer `durable`.
pub(crate) async fn setup(
    client: &Client,
    consumer: Option<(&Client, &str)>,
    stream_name: &str,
    subjects: &[String],
    name: &str,
    options: &JetStreamOptions,
    counters: &Arc<ConsumerCounters>,
) -> Result<JetStream, BridgeError> {
    let spec = StreamSpec::new(
        context(client, options),
        stream_name.to_owned(),
        options,
        Arc::clone(counters),
    );
    let stream = spec
        .ensure(subjects)
        .await
        .map_err(|source| BridgeError::JetStream {
            what: format!(
                "creating stream {stream_name} or adding the subjects {subjects:?} to it"
            ),
            source,
        })?;

    let consumer = match consumer {
        Some((consumer_client, durable)) => Some(
            create_consumer(
                StreamSpec::new(
                    context(consumer_client, options),
                    stream_name.to_owned(),
                    options,
                    Arc::clone(counters),
                ),
                subjects.to_vec(),
                durable,
                name,
                options,
                stream.cached_info().created,
            )
            .await?,
        ),
        None => None,
    };
    Ok(JetStream { spec, consumer })
}

async fn create_consumer(
    spec: StreamSpec,
    subjects: Vec<String>,
    durable: &str,
    name: &str,
    options: &JetStreamOptions,
    stream_created: time::OffsetDateTime,
) -> Result<Consumer, BridgeError> {
    let durable = durable.to_owned();
    let config = ConsumerConfig {
        durable_name: Some(durable.clone()),
        description: Some(format!("switchboard-nats importer of bridge {name}")),
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        max_ack_pending: options.max_ack_pending,
        max_deliver: options.max_deliver,
        backoff: options.redelivery_backoff.clone(),
        // A new importer starts with what is published from now on, not
        // the stream's whole history; an existing one resumes where it was.
        deliver_policy: DeliverPolicy::New,
        ..Default::default()
    };
    let failed = |error: async_nats::Error| BridgeError::JetStream {
        what: format!(
            "creating or looking up consumer {durable}, or its placeholder {durable}~resume, \
             on stream {} (a permission missing for either makes the request time out)",
            spec.name()
        ),
        source: error,
    };
    let stream = spec
        .context
        .get_stream(spec.name())
        .await
        .map_err(|error| failed(error.into()))?;
    // Everything up to the acknowledgement floor was handled (for a new
    // consumer: everything before it started).
    let (consumer, floor) = resume::open(&stream, &config).await.map_err(failed)?;
    Ok(Consumer {
        spec,
        subjects,
        durable,
        config,
        consumer,
        stream_created,
        handled: Handled::starting_after(floor),
    })
}

#[cfg(test)]
mod tests {
    use super::{judge, Handled, Store};
    use async_nats::jetstream::stream::State;

    #[test]
    fn the_floor_rises_only_over_contiguous_sequences() {
        let mut handled = Handled::starting_after(10);
        assert_eq!(handled.resume_at(), 11);
        assert!(handled.contains(10) && !handled.contains(11));
        // 11 is held back: 12 and 13 go in above it.
        handled.insert(12);
        handled.insert(13);
        assert_eq!(handled.resume_at(), 11, "11 still to come");
        assert!(handled.contains(12) && !handled.contains(11));
        handled.insert(11);
        assert_eq!(handled.resume_at(), 14, "and the floor passes 12, 13");
        // Sequences at or below the floor change nothing.
        handled.insert(5);
        assert_eq!(handled.resume_at(), 14);
    }

    #[test]
    fn the_servers_acknowledgement_floor_passes_what_never_came() {
        let mut handled = Handled::starting_after(0);
        handled.insert(3);
        handled.insert(5);
        // 1 and 2 were deleted from the stream: the server's floor says so.
        handled.advance_to(2);
        assert_eq!(handled.resume_at(), 4, "3 handled already");
        assert!(!handled.contains(4) && handled.contains(5));
        handled.advance_to(1);
        assert_eq!(handled.resume_at(), 4, "never lowered");
    }

    /// A stream's state as the server describes it in JSON.
    fn state(messages: u64, first: u64, last: u64, first_ts: &str, last_ts: &str) -> State {
        serde_json::from_value(serde_json::json!({
            "messages": messages,
            "bytes": 0,
            "first_seq": first,
            "first_ts": first_ts,
            "last_seq": last,
            "last_ts": last_ts,
            "consumer_count": 0,
        }))
        .unwrap()
    }

    #[test]
    fn a_stream_holding_numbers_older_than_itself_is_judged() {
        // 2026-12-06T00:01:47.912Z
        let created =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_796_515_307_912_000_000).unwrap();
        // What a stream created during the deletion of its predecessor
        // showed: the old stream's purged numbers and times.
        let purged = state(
            0,
            149,
            148,
            "2026-12-06T00:01:47.432Z",
            "2026-12-06T00:01:47.884Z",
        );
        assert_eq!(judge(created, &purged), Store::Lost);
        // Or its messages, which only a read can tell from a working
        // stream's under a clock set back.
        let old = "2026-12-06T00:01:40Z";
        assert_eq!(
            judge(created, &state(3, 146, 148, old, old)),
            Store::Suspect
        );
        // A new stream, and one that stored a message since.
        let zero = "0001-01-01T00:00:00Z";
        assert_eq!(judge(created, &state(0, 0, 0, zero, zero)), Store::Sound);
        let stored = "2026-12-06T00:01:48Z";
        assert_eq!(
            judge(created, &state(1, 1, 1, stored, stored)),
            Store::Sound
        );
        // Purged after it stored: it keeps the time of its last message.
        assert_eq!(
            judge(created, &state(0, 149, 148, stored, stored)),
            Store::Sound
        );
        // Created with a first sequence of its own: no last message time.
        assert_eq!(judge(created, &state(0, 100, 99, zero, zero)), Store::Sound);
        let epoch = "1970-01-01T00:00:00Z";
        assert_eq!(
            judge(created, &state(0, 100, 99, epoch, epoch)),
            Store::Sound
        );
        // A message stored as the stream was created is its own.
        let at_creation = "2026-12-06T00:01:47.912Z";
        assert_eq!(
            judge(created, &state(0, 2, 1, at_creation, at_creation)),
            Store::Sound
        );
    }
}
