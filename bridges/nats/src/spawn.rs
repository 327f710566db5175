//! The last step of a bridge's start: a task for each subscription
//! [`connect`](crate::connect) made, and for the retained state's.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Delivery;
use crate::connect::Subscribed;
use crate::retained::{self, Retained};
use crate::shared::Shared;
use crate::{export, import, presence, serve};

/// Spawns the bridge's tasks on `handle`, each watching `stopped`.
pub(crate) fn spawn(
    handle: &Handle,
    shared: &Arc<Shared>,
    subscribed: Subscribed,
    retained: Option<(&Arc<Retained>, Vec<retained::Task>)>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let Subscribed {
        presence,
        exports,
        stream,
        consumer,
        core_imports,
        served,
        replies,
    } = subscribed;
    let shared = || Arc::clone(shared);
    let mut tasks = vec![handle.spawn(presence::run(shared(), presence, stopped.clone()))];
    for (delivery, subscription) in exports {
        tasks.push(match delivery {
            Delivery::AtMostOnce => {
                handle.spawn(export::run_core(shared(), subscription, stopped.clone()))
            }
            Delivery::AtLeastOnce => {
                let stream = stream
                    .clone()
                    .expect("JetStream is set up whenever a type is exported at-least-once");
                handle.spawn(export::run_jetstream(
                    shared(),
                    stream,
                    subscription,
                    stopped.clone(),
                ))
            }
        });
    }
    for (entry, subscriber) in core_imports {
        tasks.push(handle.spawn(import::run_core(
            shared(),
            entry,
            subscriber,
            stopped.clone(),
        )));
    }
    if let Some((consumer, reconnect, advisories)) = consumer {
        tasks.push(handle.spawn(import::run_jetstream(
            shared(),
            consumer,
            reconnect,
            advisories,
            stopped.clone(),
        )));
    }
    for (entry, requests, done) in served {
        tasks.push(handle.spawn(serve::run_requests(
            shared(),
            entry,
            requests,
            done,
            stopped.clone(),
        )));
    }
    if let Some(replies) = replies {
        tasks.push(handle.spawn(serve::run_replies(shared(), replies, stopped.clone())));
    }
    if let Some((retained, retained_tasks)) = retained {
        for task in retained_tasks {
            tasks.push(handle.spawn(task.run(shared(), Arc::clone(retained), stopped.clone())));
        }
    }
    tasks
}
