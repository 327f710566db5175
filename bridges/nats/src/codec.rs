//! How an event's payload is written on the wire: serde JSON by default,
//! any serde format through the [`Codec`] trait.

use std::error::Error;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An encoding or decoding failure, with the codec's own error as its source.
#[derive(Debug)]
pub struct CodecError {
    source: Box<dyn Error + Send + Sync>,
}

impl CodecError {
    /// Wraps a codec's error.
    pub fn new(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "codec error: {}", self.source)
    }
}

impl Error for CodecError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// A payload format for the events the bridge carries.
///
/// The bridge encodes each exported event with it and decodes each imported
/// message with it; both ends of a subject must use the same codec. Its
/// [`content_type`](Codec::content_type) travels in the `content-type` header
/// (the CloudEvents `datacontenttype`), unless it is `application/json`,
/// the CloudEvents default.
///
/// A codec for another serde format is a few lines:
///
/// ```
/// use serde::{de::DeserializeOwned, Serialize};
/// use switchboard_nats::{Codec, CodecError};
///
/// /// Pretty-printed JSON, for reading messages with `nats sub`.
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn content_type(&self) -> &str {
///         "application/json"
///     }
///     fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
///         serde_json::to_vec_pretty(value).map_err(CodecError::new)
///     }
///     fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
///         serde_json::from_slice(bytes).map_err(CodecError::new)
///     }
/// }
///
/// let bytes = PrettyJson.encode(&vec![1, 2]).unwrap();
/// assert_eq!(PrettyJson.decode::<Vec<u8>>(&bytes).unwrap(), [1, 2]);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The MIME type of the encoded payloads.
    fn content_type(&self) -> &str;

    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When the value cannot be represented in the format.
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decodes a `T` from `bytes`.
    ///
    /// # Errors
    ///
    /// When `bytes` are not a valid encoding of a `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// The default codec: serde JSON, `application/json`.
///
/// ```
/// use switchboard_nats::{Codec, Json};
///
/// let bytes = Json.encode(&("route.added", 3)).unwrap();
/// assert_eq!(bytes, br#"["route.added",3]"#);
/// assert!(Json.decode::<(String, u32)>(b"not json").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    fn content_type(&self) -> &str {
        "application/json"
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(CodecError::new)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(CodecError::new)
    }
}
