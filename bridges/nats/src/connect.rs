//! The second step of a bridge's start: connecting to NATS and subscribing
//! to what the [plan](crate::plan) names, on the server and on the bus.
//! When it returns, the server has registered every subscription, and the
//! stream and consumer exist.

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, ServerAddr, Subscriber, ToServerAddrs};
use switchboard::Subscription;

use crate::client_events::{self, ClientEvents};
use crate::cloudevents::largest_header_block;
use crate::config::{ConfigError, Delivery};
use crate::dead_letter::DeadLetters;
use crate::error::BridgeError;
use crate::import::Reconnect;
use crate::jetstream::{self, Consumer, StreamSpec};
use crate::plan::{Feed, Plan};
use crate::presence::{self, Claim};
use crate::stats::ConsumerCounters;
use crate::types::{ImportType, ServedType};

/// How long `connect` waits for a bridge to answer its name's probe when
/// something other than a bridge keeps "no responders" from coming (a `>`
/// subscriber): a live bridge answers in a round trip.
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// How long `connect` waits for the server to confirm the subscriptions.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns once the server has processed every command this client sent
/// before it, subscriptions included: it processes a connection's commands
/// in order, so a message the client publishes to an inbox of its own comes
/// back only after them. (`flush` only writes the client's buffer to the
/// socket: another client's message could still reach the server before our
/// subscriptions, and miss them.)
async fn confirm_subscriptions(client: &Client) -> Result<(), BridgeError> {
    let inbox = client.new_inbox();
    let mut echo =
        client
            .subscribe(inbox.clone())
            .await
            .map_err(|source| BridgeError::Subscribe {
                subject: inbox.clone(),
                source,
            })?;
    let round_trip = async {
        client.publish(inbox, bytes::Bytes::new()).await.ok()?;
        futures_util::StreamExt::next(&mut echo).await
    };
    match tokio::time::timeout(CONFIRM_TIMEOUT, round_trip).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) | Err(_) => Err(BridgeError::NotConfirmed {
            waited: CONFIRM_TIMEOUT,
        }),
    }
}

/// Waits until `client` is connected (at once, unless it was built with
/// `retry_on_initial_connect`), or says why it is not: the client's last
/// connection error tells refused credentials from an absent server.
async fn wait_connected(client: &Client, events: &ClientEvents) -> Result<(), BridgeError> {
    // The state, not the `Connected` event: the client drops events when its
    // event queue is full (a flood of slow-consumer events), a state it keeps.
    let connected = async {
        while client.connection_state() != State::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(CONFIRM_TIMEOUT, connected)
        .await
        .map_err(|_| BridgeError::NotConnected {
            waited: CONFIRM_TIMEOUT,
            last_error: events.last_error(),
        })
}

/// Fails if the headers of some configured type would not fit in the
/// server's `max_payload`, which would refuse every one of its messages.
fn check_header_room(client: &Client, plan: &Plan) -> Result<(), BridgeError> {
    let max_payload = client.server_info().max_payload;
    let types = plan
        .exports
        .iter()
        .map(|e| (e.rust_type, &e.event_type))
        .chain(plan.imports.iter().map(|i| (i.rust_type, &i.event_type)))
        .chain(
            plan.served
                .iter()
                .map(|(_, s)| (s.request_rust_type, &s.request_type)),
        );
    for (rust_type, event_type) in types {
        let bytes = largest_header_block(event_type, &plan.name);
        if bytes >= max_payload {
            return Err(BridgeError::Config(ConfigError::HeadersTooLarge {
                rust_type,
                bytes,
                max_payload,
            }));
        }
    }
    Ok(())
}

/// The bridge's connections, for what its tasks share.
pub(crate) struct Connected {
    pub client: Client,
    pub client_events: Arc<ClientEvents>,
    /// The at-least-once importer's own connection, if it has one.
    pub consumer_client: Option<Client>,
    pub consumer_events: Arc<ClientEvents>,
    pub dead_letters: DeadLetters,
    /// Shared with the streams, which count the broken ones they replace.
    pub consumer_counters: Arc<ConsumerCounters>,
}

/// What the bridge's tasks read, one task each (but `served`: one task per
/// served type reads its requests and the done notices).
pub(crate) struct Subscribed {
    pub presence: Claim,
    pub exports: Vec<(Delivery, Subscription)>,
    /// The prefix's stream, on the main connection, for the at-least-once
    /// exporter.
    pub stream: Option<StreamSpec>,
    /// The durable consumer, how to build its connection again, and the
    /// server's max-deliveries advisories about it.
    pub consumer: Option<(Consumer, Reconnect, Subscriber)>,
    pub core_imports: Vec<(Arc<ImportType>, Subscriber)>,
    pub served: Vec<(Arc<ServedType>, Subscriber, Subscriber)>,
    pub replies: Option<Subscription>,
}

/// Connects to the servers `addrs` with `options` and subscribes to what
/// `plan` names.
pub(crate) async fn connect(
    plan: &Plan,
    addrs: impl ToServerAddrs,
    options: ConnectOptions,
) -> Result<(Connected, Subscribed), BridgeError> {
    let name = &plan.name;
    // Resolved once: the consumer's connection goes to the same servers.
    let addrs: Vec<ServerAddr> = addrs
        .to_server_addrs()
        .map_err(|error| {
            BridgeError::Connect(async_nats::ConnectError::with_source(
                async_nats::ConnectErrorKind::ServerParse,
                error,
            ))
        })?
        .collect();

    let client_events = Arc::new(ClientEvents::default());
    let consumer_counters = Arc::new(ConsumerCounters::default());
    let client = client_events::install(options.clone(), name, "main", Arc::clone(&client_events))
        .connect(addrs.clone())
        .await
        .map_err(BridgeError::Connect)?;
    wait_connected(&client, &client_events).await?;
    check_header_room(&client, plan)?;
    let names: Vec<&str> = plan.presence_names.iter().map(String::as_str).collect();
    let presence = presence::claim(&client, &plan.prefix, &names, PROBE_WAIT).await?;

    let exports = plan
        .export_feeds
        .iter()
        .map(|(delivery, feed)| Ok((*delivery, subscribe_bus(plan, feed)?)))
        .collect::<Result<_, BridgeError>>()?;

    let consumer_events = Arc::new(ClientEvents::default());
    let (mut consumer_client, mut stream, mut consumer) = (None, None, None);
    if let Some(planned) = &plan.jetstream {
        jetstream::check(&client).await?;
        // The consumer reads on a connection of its own: see `jetstream`.
        let reconnect = match &planned.consumer {
            Some(_) => {
                let reconnect = Reconnect {
                    addrs,
                    options: client_events::install(
                        options,
                        name,
                        "consumer",
                        Arc::clone(&consumer_events),
                    ),
                };
                let client = reconnect
                    .options
                    .clone()
                    .connect(reconnect.addrs.clone())
                    .await
                    .map_err(BridgeError::Connect)?;
                wait_connected(&client, &consumer_events).await?;
                consumer_client = Some(client);
                Some(reconnect)
            }
            None => None,
        };
        let durable = planned
            .consumer
            .as_ref()
            .map(|(durable, _)| durable.as_str());
        let set_up = jetstream::setup(
            &client,
            consumer_client.as_ref().zip(durable),
            &planned.stream,
            &planned.subjects,
            name,
            &plan.jetstream_options,
            &consumer_counters,
        )
        .await?;
        if let (Some(durable_consumer), Some(reconnect), Some((_, advisories))) =
            (set_up.consumer, reconnect, &planned.consumer)
        {
            let advisories = client
                .subscribe(advisories.clone())
                .await
                .map_err(|source| BridgeError::Subscribe {
                    subject: advisories.clone(),
                    source,
                })?;
            consumer = Some((durable_consumer, reconnect, advisories));
        }
        stream = Some(set_up.spec);
    }

    let core_imports = subscribe_each(
        &client,
        plan.imports
            .iter()
            .filter(|entry| entry.delivery == Delivery::AtMostOnce)
            .map(|entry| (entry.subject.clone(), entry)),
    )
    .await?;
    let served_subscriptions = subscribe_each(
        &client,
        plan.served
            .iter()
            .map(|(subject, entry)| (subject.clone(), entry)),
    )
    .await?;
    // One subscription to the done notices per served type, read by the
    // type's task after its requests: see `serve::run_requests`.
    let done_subscriptions = subscribe_each(
        &client,
        plan.served
            .iter()
            .map(|(_, entry)| (plan.done_subject.clone(), entry)),
    )
    .await?;
    let served = served_subscriptions
        .into_iter()
        .zip(done_subscriptions)
        .map(|((entry, requests), (_, done))| (entry, requests, done))
        .collect();
    let replies = match &plan.replies {
        Some(feed) => Some(subscribe_bus(plan, feed)?),
        None => None,
    };
    // The server has registered every subscription once this returns:
    // a message published after `connect` returns reaches them.
    confirm_subscriptions(&client).await?;

    let dead_letters = DeadLetters::new(
        jetstream::context(&client, &plan.jetstream_options),
        &plan.prefix,
        name,
        &plan.jetstream_options,
        Arc::clone(&consumer_counters),
    );
    if plan.jetstream.as_ref().is_some_and(|js| js.dead_letters) {
        dead_letters
            .ensure()
            .await
            .map_err(|source| BridgeError::JetStream {
                what: "creating the dead-letter stream".to_owned(),
                source,
            })?;
    }
    let connected = Connected {
        client,
        client_events,
        consumer_client,
        consumer_events,
        dead_letters,
        consumer_counters,
    };
    let subscribed = Subscribed {
        presence,
        exports,
        stream,
        consumer,
        core_imports,
        served,
        replies,
    };
    Ok((connected, subscribed))
}

/// Subscribes to the bus as `feed` says.
fn subscribe_bus(plan: &Plan, feed: &Feed) -> Result<Subscription, BridgeError> {
    plan.bus
        .subscribe_with(feed.options())
        .map_err(BridgeError::Bus)
}

/// Subscribes to each entry's subject (the at-most-once imports, the served
/// request types and their done notices), pairing each subscription with
/// its entry.
async fn subscribe_each<'a, T: 'a>(
    client: &Client,
    entries: impl IntoIterator<Item = (String, &'a Arc<T>)>,
) -> Result<Vec<(Arc<T>, Subscriber)>, BridgeError> {
    let mut subscriptions = Vec::new();
    for (subject, entry) in entries {
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|source| BridgeError::Subscribe { subject, source })?;
        subscriptions.push((Arc::clone(entry), subscriber));
    }
    Ok(subscriptions)
}
