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
    /// No server accepted the connection.
    Connect(async_nats::ConnectError),
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
            BridgeError::Connect(error) => write!(
                f,
                "could not connect to NATS: {error}; check that nats-server runs at the given \
                 address and that the connect options carry the credentials (user/password, \
                 token, NKey, credentials file) and TLS settings it requires"
            ),
            BridgeError::JetStream { what, source } => write!(
                f,
                "JetStream setup failed while {what}: {source}; at-least-once delivery needs a \
                 server started with JetStream enabled (nats-server -js)"
            ),
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
            BridgeError::NotConfirmed { .. } => None,
            BridgeError::Bus(error) => Some(error),
            BridgeError::Runtime(error) => Some(error),
        }
    }
}

impl From<ConfigError> for BridgeError {
    fn from(error: ConfigError) -> Self {
        BridgeError::Config(error)
    }
}
