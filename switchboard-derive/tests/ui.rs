//! Misuse of the derives is a compile error that says what to write instead;
//! so is a filter added to typed subscribe options (`typed_options_filter.rs`:
//! the one compile-fail case of the core crate's API, kept here with the others).
//! The expected messages are in `tests/ui/*.stderr`; after changing a message,
//! regenerate them with `TRYBUILD=overwrite cargo test -p switchboard-derive --test ui`
//! and review the diff. They are rustc's output, so they are checked on the
//! stable toolchain only (see `.ci/run`).

#[test]
fn misuse_is_a_clear_compile_error() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
