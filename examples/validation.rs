//! Coordinated configuration validation with a scatter-gather request.
//!
//! An ingress controller is about to apply a new configuration. Three
//! independent validators (components that know nothing about each other or
//! about the controller) must approve it first: `schema` and `routes` answer
//! at once, `quota` asks a slow backend and takes about 0.8 s.
//!
//! 1. Full quorum: wait for all three validators.
//! 2. Graceful degradation: `min_responses(2)` applies the configuration as
//!    soon as two validators approve, without waiting for the slow one.
//! 3. Timeout: a 300 ms deadline that the slow validator misses; the error
//!    carries the partial result, so the caller still sees the two verdicts.
//!
//! Run: `cargo run --example validation`

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use switchboard::{
    Event, EventBus, Request, RequestError, RequestOptions, RequestResult, Response, Timestamp,
    TypedSubscription,
};

/// The request: validate this configuration revision.
#[derive(Event, Request)]
#[event(type = "config.validate")]
struct ValidateConfig {
    #[request(id)]
    revision: String,
    hosts: Vec<&'static str>,
    replicas: u32,
    timestamp: Timestamp,
}

/// A validator's answer.
#[derive(Event, Response)]
#[event(type = "config.verdict")]
struct Verdict {
    #[response(request_id)]
    revision: String,
    #[response(responder)]
    validator: &'static str,
    problems: Vec<String>,
    timestamp: Timestamp,
}

type Check = fn(&ValidateConfig) -> Vec<String>;

fn check_schema(config: &ValidateConfig) -> Vec<String> {
    (config.hosts.is_empty())
        .then(|| "no hosts configured".to_string())
        .into_iter()
        .collect()
}

fn check_routes(config: &ValidateConfig) -> Vec<String> {
    config
        .hosts
        .iter()
        .filter(|host| !host.contains('.'))
        .map(|host| format!("host {host:?} is not fully qualified"))
        .collect()
}

fn check_quota(config: &ValidateConfig) -> Vec<String> {
    thread::sleep(Duration::from_millis(800)); // a slow backend
    (config.replicas > 10)
        .then(|| format!("{} replicas exceed the quota of 10", config.replicas))
        .into_iter()
        .collect()
}

/// A validator: a thread answering every validation request it gets.
struct Validator {
    requests: Arc<TypedSubscription<ValidateConfig>>,
    thread: thread::JoinHandle<()>,
}

impl Validator {
    fn spawn(bus: &EventBus, name: &'static str, check: Check) -> Self {
        let requests = Arc::new(bus.subscribe_to::<ValidateConfig>(name, 16).unwrap());
        let thread = {
            let requests = Arc::clone(&requests);
            let bus = bus.clone();
            thread::spawn(move || {
                // Ends once the subscription is unsubscribed and drained.
                for request in requests.iter() {
                    bus.publish(Verdict {
                        revision: request.revision.clone(),
                        validator: name,
                        problems: check(&request),
                        timestamp: Timestamp::now(),
                    });
                }
            })
        };
        Self { requests, thread }
    }

    fn stop(self) {
        self.requests.unsubscribe();
        self.thread.join().unwrap();
    }
}

fn print_verdicts(result: &RequestResult<Verdict>) {
    for verdict in &result.responses {
        if verdict.problems.is_empty() {
            println!("    {:<7} approves", verdict.validator);
        } else {
            println!(
                "    {:<7} rejects: {}",
                verdict.validator,
                verdict.problems.join("; ")
            );
        }
    }
    for error in &result.errors {
        println!("    {error}");
    }
}

fn approved(result: &RequestResult<Verdict>) -> bool {
    result.responses.iter().all(|v| v.problems.is_empty())
}

fn main() {
    let bus = EventBus::new();
    let validators = [
        Validator::spawn(&bus, "schema", check_schema),
        Validator::spawn(&bus, "routes", check_routes),
        Validator::spawn(&bus, "quota", check_quota),
    ];
    bus.start();
    let all = ["schema", "routes", "quota"];

    println!("1. Full quorum: every validator must answer");
    let started = Instant::now();
    let config = ValidateConfig {
        revision: "rev-1".into(),
        hosts: vec!["shop.example.com", "localhost"],
        replicas: 3,
        timestamp: Timestamp::now(),
    };
    let options = RequestOptions::new(all).timeout(Duration::from_secs(5));
    let result = bus
        .request::<Verdict, _>(config, options)
        .expect("all validators answer within 5 s");
    print_verdicts(&result);
    println!(
        "    -> {} after {:?} ({} of 3 verdicts)\n",
        if approved(&result) {
            "apply rev-1"
        } else {
            "reject rev-1"
        },
        started.elapsed(),
        result.responses.len()
    );

    println!("2. Graceful degradation: two verdicts are enough");
    let started = Instant::now();
    let config = ValidateConfig {
        revision: "rev-2".into(),
        hosts: vec!["shop.example.com", "api.example.com", "admin.example.com"],
        replicas: 5,
        timestamp: Timestamp::now(),
    };
    let options = RequestOptions::new(all)
        .min_responses(2)
        .timeout(Duration::from_secs(5));
    let result = bus
        .request::<Verdict, _>(config, options)
        .expect("two validators answer within 5 s");
    print_verdicts(&result);
    println!(
        "    -> {} after {:?}, without waiting for {}\n",
        if approved(&result) {
            "apply rev-2"
        } else {
            "reject rev-2"
        },
        started.elapsed(),
        result.missing.join(", ")
    );

    println!("3. Timeout: the slow validator misses a 300 ms deadline");
    let started = Instant::now();
    let config = ValidateConfig {
        revision: "rev-3".into(),
        hosts: vec!["shop.example.com"],
        replicas: 12,
        timestamp: Timestamp::now(),
    };
    let options = RequestOptions::new(all).timeout(Duration::from_millis(300));
    match bus.request::<Verdict, _>(config, options) {
        Ok(result) => {
            print_verdicts(&result);
            println!("    -> every validator answered in time after all");
        }
        Err(RequestError::Timeout { partial, .. }) => {
            print_verdicts(&partial);
            println!(
                "    -> timed out after {:?}; {} of 3 verdicts in hand, so keep the current \
                 configuration and retry later",
                started.elapsed(),
                partial.responses.len()
            );
        }
        Err(error) => panic!("unexpected: {error}"),
    }

    // The slow validator finishes the checks it was given, then stops.
    for validator in validators {
        validator.stop();
    }
    assert_eq!(
        bus.stats().subscriber_count(),
        0,
        "no response subscription left behind"
    );
    assert_eq!(bus.stats().dropped(), 0);
}
