//! Warnings go through `tracing` when the `tracing` feature is on, and vanish otherwise.

/// `tracing::warn!` with the feature on; evaluates nothing with it off.
macro_rules! warning {
    ($($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::warn!($($arg)*);
    }};
}

pub(crate) use warning;
