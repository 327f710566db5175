//! Reading Rust source as the workspace's structure checks need it
//! (`tests/module_graph.rs`, `tests/design_names.rs`): comments removed,
//! string literals kept or emptied, and split into tokens.

#![allow(dead_code)] // each check uses its own part

/// What [`strip_comments`] does with a string literal.
#[derive(Clone, Copy)]
pub enum Strings {
    /// Keep it as written: names may live only in one (a bench id).
    Keep,
    /// Leave `""`: its braces and quotes are not code.
    Empty,
}

impl Strings {
    fn push(self, literal: &[char], out: &mut String) {
        match self {
            Strings::Keep => out.extend(literal),
            Strings::Empty => out.push_str("\"\""),
        }
    }
}

/// The text without `//` and `/* */` comments (doc comments included) and
/// without character literals; string literals (raw ones included) are
/// kept whole or emptied to `""`, as `strings` says.
pub fn strip_comments(text: &str, strings: Strings) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i - 1] == '*' && chars[i] == '/') {
                    i += 1;
                }
            }
            // A raw string: `r"…"`, `r#"…"#`, `br##"…"##`…
            'r' if !after_ident || chars[i - 1] == 'b' => {
                let mut hashes = 0;
                while chars.get(i + 1 + hashes) == Some(&'#') {
                    hashes += 1;
                }
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push(c);
                } else {
                    let start = i;
                    i += 2 + hashes;
                    while i < chars.len()
                        && !(chars[i] == '"'
                            && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')))
                    {
                        i += 1;
                    }
                    i += hashes;
                    strings.push(&chars[start..=i.min(chars.len() - 1)], &mut out);
                }
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                strings.push(&chars[start..=i.min(chars.len() - 1)], &mut out);
            }
            // A character literal (`'{'`, `'\''`); a lifetime (`'a`) stays.
            '\'' if next == Some('\\') => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 2,
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Identifiers, `::`, and single punctuation characters.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut ident = c.to_string();
            while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                ident.push(c);
                chars.next();
            }
            tokens.push(ident);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push("::".into());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// Whether `token` is an identifier (or a number) token.
pub fn is_ident(token: &str) -> bool {
    token.chars().all(|c| c.is_alphanumeric() || c == '_')
}
