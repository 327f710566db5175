//! Documents that are not about one item: rendered here by rustdoc, and kept
//! as Markdown under `docs/` in the repository.

#[doc = include_str!("../docs/design.md")]
pub mod design {}
