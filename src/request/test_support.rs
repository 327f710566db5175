//! The response type the request module's unit tests share.
//!
//! Written by hand rather than derived: the library's unit tests also build
//! without the `derive` feature.

use std::sync::Arc;
use std::time::SystemTime;

use crate::event::{Event, Response};

/// An answer from `responder` to request `request_id`.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) request_id: &'static str,
    pub(super) responder: String,
}

impl Event for Answer {
    fn event_type(&self) -> &str {
        "answer"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

impl Response for Answer {
    fn request_id(&self) -> &str {
        self.request_id
    }
    fn responder(&self) -> &str {
        &self.responder
    }
}

/// `responder`'s answer to `request_id`.
pub(super) fn answer(request_id: &'static str, responder: &str) -> Arc<Answer> {
    Arc::new(Answer {
        request_id,
        responder: responder.into(),
    })
}
