//! What can go wrong when a bridge starts.

use std::error::Error;
use std::fmt;

use crate::config::ConfigError;

/// Why a bridge could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration is invalid; nothing was contacted.
    Config(ConfigError),
    /// No server accepted the connection (unreachable, or the credentials
    /// were refused: the message says which).
    Connect(async_nats::ConnectError),
    /// With [`retry_on_initial_connect`](async_nats::ConnectOptions::retry_on_initial_connect),
    /// the client did not connect within the wait: the last error the
    /// client reported says why.
    NotConnected {
        /// How long the bridge waited.
        waited: std::time::Duration,
        /// The client's last connection error, if it reported one.
        last_error: Option<String>,
    },
    /// The server runs without JetStream (or not for this account), which
    /// at-least-once delivery needs.
    NoJetStream {
        /// What the server answered.
        detail: String,
    },
    /// Another live process has a bridge of this name on this prefix, or
    /// one whose durable consumer has this name: each would skip the other's
    /// events as its own echo, or they would share a durable consumer.
    NameTaken {
        /// The name (the bridge's or its durable consumer's).
        name: String,
    },
    /// The JetStream stream or consumer could not be set up.
    JetStream {
        /// What the bridge was doing.
        what: String,
        /// The client's error.
        source: Box<dyn Error + Send + Sync>,
    },
    /// A NATS subscription could not be made.
    Subscribe {
        /// The subject.
        subject: String,
        /// The client's error.
        source: async_nats::SubscribeError,
    },
    /// The server did not confirm the bridge's subscriptions in time.
    NotConfirmed {
        /// How long the bridge waited.
        waited: std::time::Duration,
    },
    /// The bus refused the bridge's subscription.
    Bus(switchboard::SubscribeError),
    /// The runtime thread of [`connect_blocking`](crate::BridgeBuilder::connect_blocking)
    /// could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(error) => write!(f, "invalid bridge configuration: {error}"),
            BridgeError::Connect(error) => {
                write!(f, "could not connect to NATS: {error}; ")?;
                f.write_str(advice(&error.kind().to_string()))
            }
            BridgeError::NotConnected { waited, last_error } => {
                write!(f, "not connected to NATS after {waited:?}")?;
                match last_error {
                    Some(error) => write!(f, " (last error: {error}); {}", advice(error)),
                    None => f.write_str(
                        "; check that nats-server runs at the given address and is reachable",
                    ),
                }
            }
            BridgeError::NoJetStream { detail } => write!(
                f,
                "the server has no JetStream for this account ({detail}): at-least-once delivery \
                 and retained state need a server started with JetStream enabled (nats-server -js, or \
                 `jetstream: enabled` in its configuration) and an account allowed to use it"
            ),
            BridgeError::NameTaken { name } => write!(
                f,
                "another live process already runs a bridge named {name:?} on this prefix, or \
                 one whose durable consumer has that name: give each process its own name (each would skip the other's events as its own echo, \
                 and they would share one durable consumer); if that process was just killed, \
                 the server forgets it once its connection times out"
            ),
            BridgeError::JetStream { what, source } => {
                write!(f, "JetStream setup failed while {what}: {source}")
            }
            BridgeError::NotConfirmed { waited } => write!(
                f,
                "the server did not confirm the bridge's subscriptions within {waited:?}: check \
                 that it is reachable and not overloaded, then connect again"
            ),
            BridgeError::Subscribe { subject, source } => write!(
                f,
                "could not subscribe to {subject:?}: {source}; check the account's subscribe \
                 permissions"
            ),
            BridgeError::Bus(error) => {
                write!(f, "the bus refused the bridge's subscription: {error}")
            }
            BridgeError::Runtime(error) => {
                write!(f, "could not start the bridge's runtime thread: {error}")
            }
        }
    }
}

impl Error for BridgeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BridgeError::Config(error) => Some(error),
            BridgeError::Connect(error) => Some(error),
            BridgeError::JetStream { source, .. } => Some(&**source),
            BridgeError::Subscribe { source, .. } => Some(source),
            BridgeError::NotConfirmed { .. }
            | BridgeError::NotConnected { .. }
            | BridgeError::NoJetStream { .. }
            | BridgeError::NameTaken { .. } => None,
            BridgeError::Bus(error) => Some(error),
            BridgeError::Runtime(error) => Some(error),
        }
    }
}

/// What to check after a connection error: credentials when the server
/// refused them, the address otherwise.
fn advice(error: &str) -> &'static str {
    let error = error.to_ascii_lowercase();
    // `ConnectErrorKind::Authentication` displays as "failed signing nonce".
    if error.contains("authorization")
        || error.contains("authentication")
        || error.contains("nonce")
    {
        "the server refused the credentials: check that the connect options carry the ones it \
         requires (user/password, token, NKey, credentials file)"
    } else if error.contains("tls") {
        "check the TLS settings of the connect options against the server's"
    } else {
        "no server answered: check that nats-server runs at the given address and is reachable"
    }
}

impl From<ConfigError> for BridgeError {
    fn from(error: ConfigError) -> Self {
        BridgeError::Config(error)
    }
}
