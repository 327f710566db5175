//! Loom model checks of `switchboard`; the models live in `tests/`.
