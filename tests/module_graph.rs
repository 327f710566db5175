//! No import circles: in each crate of the workspace, no module imports one
//! that imports it back, directly or through others, so each module can be
//! read knowing only those below it.
//!
//! A module depends on another when its file names a path into it
//! (`crate::a::b`, `super::x`, `self::y`, or a name a `use` brought into
//! scope), in a `use` or inline; a path to a re-exported item leads to where
//! the item is defined. Declaring a child module (`mod x;`) is containment,
//! not a dependency. Comments and string contents are ignored. Circles are
//! looked for at every depth: `core` with all its submodules against the
//! other top modules, then `core::delivery` against `core::writer` and
//! `core` itself, and so on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[path = "support/rust_source.rs"]
mod rust_source;

use rust_source::{is_ident, strip_comments, tokenize, Strings};

/// Each workspace crate's source directory.
const CRATES: &[&str] = &[
    "src",
    "switchboard-derive/src",
    "loom-tests/src",
    "examples/loom-user/src",
    "bridges/nats/src",
];

/// Crates whose circles are being removed elsewhere (none left). Once one
/// has none, the test fails until it is taken off the list, so the list only
/// shrinks.
const KNOWN_CIRCULAR: &[&str] = &[];

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = Vec::new();
    for dir in CRATES {
        let circles = circles(&crate_graph(root, &root.join(dir)));
        let known = KNOWN_CIRCULAR.contains(dir);
        match (circles.is_empty(), known) {
            (false, false) => report.extend(
                circles
                    .iter()
                    .map(|circle| format!("{dir}: {}", circle.join(" <-> "))),
            ),
            (true, true) => report.push(format!(
                "{dir} has no circle left: take it off KNOWN_CIRCULAR"
            )),
            _ => {}
        }
    }
    assert!(
        report.is_empty(),
        "import circles between modules (modules that reach each other, \
         each counting with its submodules):\n{}",
        report.join("\n")
    );
}

/// A path as written in module `from` (`crate::..`, `super::..`, `self::..`,
/// or a name in scope there).
struct Written {
    from: Vec<String>,
    path: Vec<String>,
}

/// What one file declares and names.
#[derive(Default)]
struct Parsed {
    /// Its inline modules (`mod x { .. }`).
    inline: Vec<Vec<String>>,
    /// Every path it names.
    references: Vec<Written>,
    /// The names its `use` items bring into each of its modules.
    bindings: Vec<(Vec<String>, String, Written)>,
}

/// The crate's file modules, each with the file modules it depends on. A
/// path to an item that a module re-exports leads to where the item comes
/// from: `crate::Event` depends on `event.rs`, not `lib.rs`.
fn crate_graph(root: &Path, src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut modules: BTreeMap<Module, Module> = BTreeMap::new();
    let mut bindings: BTreeMap<(Vec<String>, String), Vec<Written>> = BTreeMap::new();
    let mut files = Vec::new();
    for file in rust_files(src) {
        let name = module_path(src, &file);
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.strip_prefix(root).unwrap().display()));
        let parsed = parse(&name, &strip_comments(&text, Strings::Empty));
        modules.insert(name.clone(), name.clone());
        for module in &parsed.inline {
            modules.insert(module.clone(), name.clone());
        }
        for (module, bound, written) in parsed.bindings {
            bindings.entry((module, bound)).or_default().push(written);
        }
        files.push((name, parsed.references));
    }
    let resolver = Resolver { modules, bindings };
    files
        .into_iter()
        .map(|(name, references)| {
            let targets = references
                .iter()
                .filter_map(|written| resolver.file_of(written, 0))
                .filter(|target| *target != name)
                .collect();
            (name, targets)
        })
        .collect()
}

/// A module's path in its crate (empty: the crate root).
type Module = Vec<String>;

struct Resolver {
    /// Module path -> the file module that holds it.
    modules: BTreeMap<Module, Module>,
    /// (module, name) -> what its `use` items bind the name to (a type and
    /// a derive macro may share a name).
    bindings: BTreeMap<(Vec<String>, String), Vec<Written>>,
}

impl Resolver {
    /// The file module that defines what `written` names; `None` for other
    /// crates.
    fn file_of(&self, written: &Written, hops: usize) -> Option<Module> {
        let path = self.absolute(written)?;
        let module_len = (0..=path.len())
            .rev()
            .find(|len| self.modules.contains_key(&path[..*len]))?;
        let module = &path[..module_len];
        if let Some(item) = path.get(module_len) {
            let key = (module.to_vec(), item.clone());
            let targets = self.bindings.get(&key).filter(|_| hops < 16);
            if let Some(file) = targets
                .into_iter()
                .flatten()
                .find_map(|target| self.file_of(target, hops + 1))
            {
                return Some(file);
            }
        }
        self.modules.get(module).cloned()
    }

    /// `written` made absolute; `None` if it names another crate.
    fn absolute(&self, written: &Written) -> Option<Vec<String>> {
        let mut base = written.from.clone();
        let mut rest = &written.path[..];
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().is_some_and(|t| t == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            // A name in scope: a child module, or what a `use` there bound.
            Some(first) => {
                let mut child = base.clone();
                child.push(first.to_string());
                if !self.modules.contains_key(&child)
                    && !self
                        .bindings
                        .contains_key(&(base.clone(), first.to_string()))
                {
                    return None;
                }
            }
            None => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.expect("a readable directory").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` is the root.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut path: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

/// The inline modules, paths and `use` bindings of a file whose module is
/// `file_module`.
fn parse(file_module: &[String], text: &str) -> Parsed {
    let tokens = tokenize(text);
    let mut parsed = Parsed::default();
    // The inline modules we are in, with the brace depth each opened at.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let mut current = file_module.to_vec();
        current.extend(stack.iter().map(|(name, _)| name.clone()));
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if stack.last().is_some_and(|(_, at)| *at == depth) {
                    stack.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                stack.push((tokens[i + 1].clone(), depth));
                current.push(tokens[i + 1].clone());
                parsed.inline.push(current);
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |p| i + p);
                for (path, bound) in expand_use(&tokens[i + 1..end]) {
                    let path: Vec<String> = path.into_iter().filter(|t| t != "self").collect();
                    if let Some(bound) = bound {
                        let written = Written {
                            from: current.clone(),
                            path: path.clone(),
                        };
                        parsed.bindings.push((current.clone(), bound, written));
                    }
                    parsed.references.push(Written {
                        from: current.clone(),
                        path,
                    });
                }
                i = end;
            }
            "crate" | "super" | "self" if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let mut path = vec![tokens[i].clone()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t == "::")
                    && tokens.get(j + 1).is_some_and(|t| is_ident(t))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                parsed.references.push(Written {
                    from: current,
                    path,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parsed
}

/// The paths a use tree names, each with the name it binds (none for a
/// glob): `a::{b, c::d as e}` is `a::b` (binding `b`) and `a::c::d` (`e`).
fn expand_use(tokens: &[String]) -> Vec<(Vec<String>, Option<String>)> {
    let mut prefix: Vec<String> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "{" => {
                let close = matching_brace(tokens, i);
                let mut paths = Vec::new();
                for part in split_top_level(&tokens[i + 1..close]) {
                    for (rest, bound) in expand_use(part) {
                        let mut path = prefix.clone();
                        path.extend(rest);
                        paths.push((path, bound));
                    }
                }
                return paths;
            }
            "as" => {
                let alias = tokens.get(i + 1).filter(|t| *t != "_").cloned();
                return vec![(prefix, alias)];
            }
            "*" => return vec![(prefix, None)],
            token if is_ident(token) && token != "pub" => prefix.push(token.to_string()),
            _ => {}
        }
    }
    let bound = prefix.last().filter(|t| *t != "self").cloned();
    let bound = match bound {
        None if prefix.len() > 1 => prefix.get(prefix.len() - 2).cloned(),
        bound => bound,
    };
    if prefix.is_empty() {
        return Vec::new();
    }
    vec![(prefix, bound)]
}

fn matching_brace(tokens: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn split_top_level(tokens: &[String]) -> Vec<&[String]> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

/// The circles of `graph`, seen at every depth: at depth 1 each top module
/// stands for itself and its submodules, at depth 2 each of theirs, and so on.
/// Each circle is its modules' names, sorted.
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    let deepest = graph.keys().map(Vec::len).max().unwrap_or(0);
    let mut circles = BTreeSet::new();
    for depth in 1..=deepest {
        let at = |module: &Module| module[..module.len().min(depth)].to_vec();
        let mut collapsed: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, targets) in graph {
            let edges = collapsed.entry(at(from)).or_default();
            edges.extend(targets.iter().map(at).filter(|to| *to != at(from)));
        }
        circles.extend(strongly_connected(&collapsed));
    }
    circles.into_iter().collect()
}

/// The sets of more than one node that all reach each other, each named and
/// sorted.
fn strongly_connected(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(module) = todo.pop() {
            for next in graph.get(module).into_iter().flatten() {
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<&Module>> =
        graph.keys().map(|module| (module, reach(module))).collect();
    let name = |module: &Module| match module.is_empty() {
        true => "crate".to_string(),
        false => module.join("::"),
    };
    let mut found = BTreeSet::new();
    for (module, reached) in &reaches {
        if reached.contains(module) {
            let circle: Vec<String> = reached
                .iter()
                .filter(|other| reaches.get(*other).is_some_and(|r| r.contains(module)))
                .map(|other| name(other))
                .collect();
            found.insert(circle);
        }
    }
    found.into_iter().collect()
}

#[test]
fn literals_and_comments_hide_no_code_and_show_none() {
    let text = r####"use a::b; // use c::d;
let x = br#"{"k":"}"#; let y = r"{"; let z = '{'; let q = b'"'; let e = '\'';
fn f<'a>(s: &'a str) -> &'a str { "}\"{" } /* use e::f; */ use g::h;"####;
    let stripped = strip_comments(text, Strings::Empty);
    assert!(
        !stripped.contains("c::d") && !stripped.contains("e::f"),
        "{stripped}"
    );
    assert!(
        stripped.contains("use a::b;") && stripped.contains("use g::h;"),
        "{stripped}"
    );
    assert!(stripped.contains("fn f<'a>(s: &'a str)"), "{stripped}");
    let opened = stripped.matches('{').count();
    assert_eq!(opened, stripped.matches('}').count(), "{stripped}");
    assert_eq!(opened, 1, "only the function's braces remain: {stripped}");
}
