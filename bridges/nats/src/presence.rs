//! One live bridge per name and prefix, across processes: two live bridges
//! with one name would each skip the other's events as their own echo and
//! share one durable consumer, silently.
//!
//! Every bridge subscribes to `_sb.{prefix}.name.{name}`, and to the same
//! subject for its durable consumer's name when that differs (two bridges
//! sharing a durable consumer would split its messages). Before it does, a
//! starting bridge asks that subject: "no responders" (answered by the
//! server at once) means the name is free; an answer means another live
//! bridge holds it, and the start fails with [`BridgeError::NameTaken`].
//! Two bridges starting at the same moment can both find the name free, so
//! each also announces itself there every [`ANNOUNCE_EVERY`]: a bridge that
//! hears another instance's announcement counts it
//! ([`ClientCounts::name_conflicts`](crate::ClientCounts::name_conflicts))
//! and logs a warning. The announcements also find out a client that has
//! stopped for good ([`ClientCounts::stopped_for_good`](crate::ClientCounts::stopped_for_good)).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::PublishErrorKind;
use async_nats::{Client, RequestErrorKind, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::error::BridgeError;
use crate::shared::Shared;
use crate::stats::warn_counted;
use crate::stop::Stop;
use crate::subject;

/// How often a bridge announces itself on its name's subject.
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// The subject of `name`'s presence under `prefix`.
fn subject_of(prefix: &str, name: &str) -> String {
    subject::control(prefix, &format!("name.{name}"))
}

/// The names a bridge holds, and its instance id.
pub(crate) struct Claim {
    names: Vec<(String, Subscriber)>,
    instance: String,
}

/// Fails if another live bridge holds one of `names` under `prefix`;
/// otherwise subscribes to each name's subject, holding it. `wait` bounds
/// the probe when something answers other than a bridge.
pub(crate) async fn claim(
    client: &Client,
    prefix: &str,
    names: &[&str],
    wait: Duration,
) -> Result<Claim, BridgeError> {
    let instance = nuid::next().to_string();
    let mut held = Vec::new();
    // Each name once: the plan lists the durable only when it differs.
    for name in names {
        let subscriber = claim_one(client, prefix, name, &instance, wait).await?;
        held.push(((*name).to_owned(), subscriber));
    }
    Ok(Claim {
        names: held,
        instance,
    })
}

async fn claim_one(
    client: &Client,
    prefix: &str,
    name: &str,
    instance: &str,
    wait: Duration,
) -> Result<Subscriber, BridgeError> {
    let subject = subject_of(prefix, name);
    let probe = client.request(
        subject.clone(),
        Bytes::from(instance.to_owned().into_bytes()),
    );
    match tokio::time::timeout(wait, probe).await {
        Ok(Ok(answer)) if is_instance_id(&answer.payload) => {
            return Err(BridgeError::NameTaken { name: name.into() })
        }
        // "No responders": nobody holds the name.
        Ok(Err(error)) if error.kind() == RequestErrorKind::NoResponders => {}
        // Something else subscribes to the subject (a `>` subscriber, a
        // stream) without answering like a bridge: the announcements will
        // tell if a bridge holds the name.
        _ => tracing::info!(
            bridge = name,
            "switchboard-nats: the name's presence probe got no bridge's answer; relying on \
             announcements to detect another live bridge of this name"
        ),
    }
    client
        .subscribe(subject.clone())
        .await
        .map_err(|source| BridgeError::Subscribe { subject, source })
}

/// Records and logs, once, that the main client stopped for good.
fn stopped_for_good(shared: &Shared) {
    if !shared.client_stopped.swap(true, Ordering::Relaxed) {
        tracing::error!(
            bridge = %shared.name,
            "switchboard-nats: the NATS client has stopped for good (its connection task \
             ended, e.g. on a header value holding a lone carriage return): nothing is sent or \
             received any more; drop the bridge and connect a new one, and keep untrusted \
             publishers off the prefix with subject permissions"
        );
    }
}

/// Whether `payload` is a bridge instance's id (a NUID).
fn is_instance_id(payload: &[u8]) -> bool {
    payload.len() == 22 && payload.iter().all(u8::is_ascii_alphanumeric)
}

/// Answers other instances' probes, announces this one, and counts the
/// announcements of other live instances of the same name.
pub(crate) async fn run(shared: Arc<Shared>, claim: Claim, stopped: watch::Receiver<bool>) {
    let Claim { names, instance } = claim;
    let subjects: Vec<String> = names
        .iter()
        .map(|(name, _)| subject_of(&shared.prefix, name))
        .collect();
    let mut subscriber = futures_util::stream::select_all(names.into_iter().map(|(_, s)| s));
    let mut announce = tokio::time::interval(ANNOUNCE_EVERY);
    let mut stop = Stop::new(stopped);
    loop {
        tokio::select! {
            biased;
            () = stop.requested() => return,
            _ = announce.tick() => {
                for subject in &subjects {
                    // Queued while disconnected; refused only by a client
                    // whose connection task has ended.
                    let sent = shared
                        .client
                        .publish(subject.clone(), Bytes::from(instance.clone().into_bytes()))
                        .await;
                    if matches!(&sent, Err(error) if error.kind() == PublishErrorKind::Send) {
                        stopped_for_good(&shared);
                    }
                }
            }
            message = subscriber.next() => {
                let Some(message) = message else {
                    // The bridge is not stopping (checked first): the
                    // client's connection task ended and took its
                    // subscriptions with it.
                    stopped_for_good(&shared);
                    return;
                };
                if message.payload == instance.as_bytes() {
                    continue;
                }
                match message.reply {
                    // Another instance starting: it fails, saying the name is taken.
                    Some(reply) => {
                        let _ = shared
                            .client
                            .publish(reply, Bytes::from(instance.clone().into_bytes()))
                            .await;
                    }
                    None => warn_counted!(
                        &shared.name_conflicts,
                        bridge = %shared.name,
                        "switchboard-nats: another live process runs a bridge with this name on \
                         this prefix: each skips the other's events as its own echo and they \
                         share a durable consumer; give each process its own name"
                    ),
                }
            }
        }
    }
}
