//! The design names only what exists: every file path and every Rust name
//! that `docs/design.md` (and the READMEs and the numbers, [`DOCUMENTS`]) writes as
//! inline code must be found in the workspace, so a rename or a removal
//! that forgets the documents fails here, not in a reader's head.
//!
//! - A span that looks like a file (`core/writer.rs`, `tests/crash.rs`,
//!   `timer.rs`) must name a file of the workspace: the path from the root,
//!   or the end of some file's path.
//! - A span that looks like Rust (`EventBus::subscribe_with`,
//!   `stats().requests.no_responders`, `retained::<T>()`) has each of its
//!   names checked, outside argument lists and generics: the name must
//!   appear in the workspace's code (Rust sources with their comments
//!   removed, `Cargo.toml` files, `.ci/run`). A name only a comment still
//!   mentions has gone from the code, so it counts as gone. And where a
//!   name follows a type the workspace defines (`EventBus::publish`,
//!   `DropReason::PreStartOverflow`), the type must have it: a field,
//!   variant, method, constant or associated type of its definition, its
//!   `impl` blocks or (a trait) its body.
//! - Names from outside the workspace that the code never writes are listed
//!   in [`OUTSIDE`], each with why; the first column of a table headed by
//!   the Go original (its method-to-call map) is the Go side and not checked.
//! - Anything else (prose in backticks, subjects such as `{prefix}.>`,
//!   header names such as `ce-id`, snippets with spaces) is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[path = "support/rust_source.rs"]
mod rust_source;

use rust_source::{strip_comments, tokenize, Strings};

/// Names the design writes that live outside the workspace's code.
const OUTSIDE: &[&str] = &[
    // The Go original's, named in prose (its table's column is not checked).
    "CoalescibleEvent",
    // The NATS server's name of async-nats' `DeliverPolicy::LastPerSubject`.
    "DeliverLastPerSubject",
    // std's, which only the benchmarks' peer (in NOT_OURS) uses.
    "RwLock",
    // The NATS server's: a stream setting, and the dead-letter stream of the
    // default prefix (`{STREAM}_DEAD`, named at run time).
    "republish",
    "SB_DEAD",
];

/// Files whose names are not the workspace's own: the benchmarks' hand-rolled
/// `RwLock` peer keeps the method names switchboard had (`subscribe_lossy`).
const NOT_OURS: &[&str] = &["benches/support/rwlock_port.rs"];

/// Files of the Go origin, named where the design compares.
const OUTSIDE_FILE_EXTENSIONS: &[&str] = &["go"];

/// The documents checked: the design, the two front doors, the numbers.
const DOCUMENTS: &[&str] = &[
    "docs/design.md",
    "README.md",
    "bridges/nats/README.md",
    "docs/performance.md",
];

#[test]
fn the_design_names_only_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = Workspace::scan(root);
    let mut report = Vec::new();
    for document in DOCUMENTS {
        let text = fs::read_to_string(root.join(document)).unwrap();
        report.extend(
            workspace
                .missing(&text)
                .into_iter()
                .map(|missing| format!("{document}: {missing}")),
        );
    }
    assert!(
        report.is_empty(),
        "the documents name what the workspace does not have (rename or \
         remove it there, or list a name from outside in OUTSIDE):\n{}",
        report.join("\n")
    );
}

#[test]
fn a_renamed_method_a_moved_file_and_a_comment_only_name_are_caught() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = Workspace::scan(root);
    // The names that must not exist are glued at run time: written whole in
    // this file's strings, they would be words of the workspace's code.
    let gone_method = concat!("publish_many", "_at_once");
    let gone_file = concat!("core/tele", "port.rs");
    let gone_field = concat!("no_such", "_field");
    // A name the workspace has, but not on this type.
    let design = format!(
        "Publish with `EventBus::publish_arc`, which `core/delivery.rs` \
         serves; the old `EventBus::{gone_method}` and `{gone_file}` are \
         gone, `stats().requests.{gone_field}` never was, nor \
         `EventBus::try_recv` (a `Subscription`'s) or \
         `DropReason::Lagging`, while `Subscription::try_recv`, \
         `Event::trace_context` and `DropReason::PreStartOverflow` are. `{{prefix}}.>` \
         and `ce-id` are not Rust, `types.go` is the Go origin's.\n\n\
         | Go original | switchboard |\n|---|---|\n\
         | `NewEventBus(capacity)` | `EventBus::new()`, `EventBus::{gone_method}` |\n"
    );
    assert_eq!(
        workspace.missing(&design),
        [
            format!("`EventBus::{gone_method}`: {gone_method}"),
            format!("`{gone_file}`: no such file"),
            format!("`stats().requests.{gone_field}`: {gone_field}"),
            "`EventBus::try_recv`: EventBus::try_recv".to_string(),
            "`DropReason::Lagging`: DropReason::Lagging".to_string(),
            format!("`EventBus::{gone_method}`: {gone_method}"),
        ]
    );
    // a_name_only_this_comment_has: a comment is not code.
    let commented = concat!("a_name_only", "_this_comment_has");
    assert_eq!(
        workspace.missing(&format!("`{commented}`")),
        [format!("`{commented}`: {commented}")]
    );
}

/// What the workspace has: its files, the words of its code, and the
/// members of each type it defines.
struct Workspace {
    files: Vec<String>,
    words: BTreeSet<String>,
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Workspace {
    fn scan(root: &Path) -> Self {
        let mut files = Vec::new();
        collect_files(root, root, &mut files);
        let mut words = BTreeSet::new();
        let mut members = BTreeMap::new();
        for file in files
            .iter()
            .filter(|file| !NOT_OURS.contains(&file.as_str()))
        {
            let text = || fs::read_to_string(root.join(file)).unwrap_or_default();
            if file.ends_with(".rs") {
                let text = text();
                words.extend(words_of(&strip_comments(&text, Strings::Keep)));
                let code = strip_comments(&text, Strings::Empty);
                collect_members(&tokenize(&code), &mut members);
            } else if file.ends_with("Cargo.toml") || file == ".ci/run" {
                words.extend(words_of(&text()));
            }
        }
        Workspace {
            files,
            words,
            members,
        }
    }

    /// Each inline code span of `markdown` that names what does not exist,
    /// with the part that does not.
    fn missing(&self, markdown: &str) -> Vec<String> {
        let mut missing = Vec::new();
        for span in inline_code(markdown) {
            let gone: Vec<String> = if let Some(extension) = file_extension(span) {
                if OUTSIDE_FILE_EXTENSIONS.contains(&extension) || self.has_file(span) {
                    continue;
                }
                vec!["no such file".to_string()]
            } else if let Some(names) = rust_names(span) {
                let mut gone: Vec<String> = names
                    .iter()
                    .filter(|name| !self.words.contains(*name) && !OUTSIDE.contains(&name.as_str()))
                    .cloned()
                    .collect();
                for pair in names.windows(2) {
                    let (owner, member) = (&pair[0], &pair[1]);
                    let lacks = self
                        .members
                        .get(owner)
                        .is_some_and(|members| !members.contains(member));
                    if lacks && !gone.contains(member) {
                        gone.push(format!("{owner}::{member}"));
                    }
                }
                gone
            } else {
                continue;
            };
            if !gone.is_empty() {
                missing.push(format!("`{span}`: {}", gone.join(", ")));
            }
        }
        missing
    }

    fn has_file(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        self.files.iter().any(|file| {
            file == path
                || file.ends_with(&format!("/{path}"))
                || file.starts_with(&format!("{path}/"))
                || file.contains(&format!("/{path}/"))
        })
    }
}

/// Every file under `dir`, as a path from `root` with `/` separators,
/// leaving out build output and version control.
fn collect_files(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "target" || name.starts_with('.') && name != ".ci" {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The contents of the inline code spans of `markdown`, outside fenced
/// blocks and the Go column of a table whose header cell names the Go
/// original.
fn inline_code(markdown: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    let mut go_table = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let row = line.starts_with('|') && cells.len() > 2;
        if !row {
            go_table = false;
        } else if !go_table && cells[1].contains("Go") && !cells[1].contains('`') {
            go_table = true;
        }
        let line = if row && go_table {
            &line[cells[1].len() + 2..]
        } else {
            line
        };
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            spans.push(code);
        }
    }
    spans
}

/// The extension of a span that names a file: a path of plain characters
/// ending in a known extension, or a directory ending in `/`.
fn file_extension(span: &str) -> Option<&str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    if !span.chars().all(plain) || span.starts_with('.') {
        return None;
    }
    if span.ends_with('/') {
        return Some("");
    }
    let (_, extension) = span.rsplit_once('.')?;
    ["rs", "md", "toml", "conf", "go", "yml", "sh"]
        .contains(&extension)
        .then_some(extension)
}

/// The names of a span written as a Rust path or expression (`a::b`,
/// `a.b()`, `a::<T>()`, `x(..)`), outside its argument lists and generics;
/// `None` when the span is not one (spaces, operators, punctuation).
fn rust_names(span: &str) -> Option<Vec<String>> {
    let span = span.trim_start_matches('.');
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut chars = span.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth = depth.checked_sub(1)?,
            ':' if chars.peek() == Some(&':') => {
                chars.next();
            }
            '.' | ',' | '&' | '\'' => {}
            c if c.is_ascii_alphanumeric() || c == '_' => {
                if depth == 0 {
                    current.push(c);
                }
                continue;
            }
            _ => return None,
        }
        if !current.is_empty() {
            names.push(std::mem::take(&mut current));
        }
    }
    if depth != 0 {
        return None;
    }
    if !current.is_empty() {
        names.push(current);
    }
    let identifier =
        |name: &String| name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    (!names.is_empty() && names.iter().all(identifier)).then_some(names)
}

/// Adds, for each type `tokens` define or implement, its members: a
/// struct's fields, an enum's variants, a trait's items, an `impl` block's
/// functions, constants and types.
fn collect_members(tokens: &[String], members: &mut BTreeMap<String, BTreeSet<String>>) {
    let identifier = |t: &str| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let mut i = 0;
    while i < tokens.len() {
        let keyword = tokens[i].as_str();
        i += 1;
        let owner = match keyword {
            "struct" | "enum" | "union" | "trait" => match tokens.get(i) {
                Some(name) if identifier(name) => name.to_string(),
                _ => continue,
            },
            "impl" => match impl_target(&tokens[i..]) {
                Some(name) => name.to_string(),
                None => continue,
            },
            _ => continue,
        };
        // The body: from the first `{` before any `;` (a unit or tuple
        // struct, an `impl Trait` in a type, has none).
        let Some(open) = tokens[i..].iter().position(|t| *t == "{" || *t == ";") else {
            continue;
        };
        if tokens[i + open] != "{" {
            continue;
        }
        let body_start = i + open + 1;
        let mut depth = 1;
        let mut j = body_start;
        let names = members.entry(owner).or_default();
        while j < tokens.len() && depth > 0 {
            match tokens[j].as_str() {
                "{" | "(" | "[" => depth += 1,
                "}" | ")" | "]" => depth -= 1,
                "fn" | "const" | "type" if depth == 1 => {
                    if let Some(name) = tokens.get(j + 1).filter(|t| identifier(t)) {
                        names.insert(name.to_string());
                    }
                }
                // A field (`name: T`) or a variant (`Name`, `Name(..)`,
                // `Name { .. }`) at the body's top level.
                name if depth == 1 && identifier(name) => {
                    let before = tokens[j - 1].as_str();
                    let after = tokens.get(j + 1).map_or("", String::as_str);
                    // `tokenize` keeps `::` whole: a lone `:` is a field's.
                    let field = after == ":";
                    let variant = keyword == "enum"
                        && (before == "{" || before == "," || before == "]")
                        && matches!(after, "," | "(" | "{" | "}" | "=");
                    if field || variant {
                        names.insert(name.to_string());
                    }
                }
                _ => {}
            }
            j += 1;
        }
        i = j;
    }
}

/// The type an `impl` header names (`impl<T> Trait for path::Type<T> where
/// .. {`): its last path segment, outside generics.
fn impl_target(header: &[String]) -> Option<&str> {
    let mut depth = 0usize;
    let mut target = None;
    for token in header {
        match token.as_str() {
            "<" => depth += 1,
            ">" => depth = depth.saturating_sub(1),
            "{" | ";" | "where" if depth == 0 => return target,
            "for" if depth == 0 => target = None,
            name if depth == 0
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name != "dyn"
                && name != "mut" =>
            {
                target = Some(name);
            }
            _ => {}
        }
    }
    None
}

/// The identifier-like words of `text`.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
}
