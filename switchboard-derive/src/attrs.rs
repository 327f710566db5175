//! Reading the derives' struct-level attributes: `#[event(...)]`,
//! `#[request(...)]`, `#[response(...)]`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Path};

/// Calls `on_key` for each `key` or `key = value` inside every `#[ns(...)]`
/// attribute of `attrs`, in order.
pub(crate) fn for_each_key(
    attrs: &[Attribute],
    ns: &str,
    mut on_key: impl FnMut(&str, ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(ns)) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            on_key(&key, meta)
        })?;
    }
    Ok(())
}

/// The error for a key `ns` does not know, listing the ones it does.
pub(crate) fn unknown_key(meta: &ParseNestedMeta<'_>, ns: &str, known: &[&str]) -> syn::Error {
    let key = path_text(&meta.path);
    let known = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    meta.error(format!(
        "unknown attribute `{ns}({key})`; expected one of: {known}"
    ))
}

/// The string of `key = "value"`; an error naming `key` for anything else.
pub(crate) fn string_value(meta: &ParseNestedMeta<'_>, ns: &str, key: &str) -> syn::Result<LitStr> {
    let value = meta.value().map_err(|_| {
        meta.error(format!(
            "`{ns}({key})` needs a value: write `{ns}({key} = \"...\")`"
        ))
    })?;
    value.parse::<LitStr>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{ns}({key} = ...)` takes a string literal, such as `{key} = \"...\"`"),
        )
    })
}

/// A bare `key`; an error if a value follows it.
pub(crate) fn flag(meta: &ParseNestedMeta<'_>, ns: &str, key: &str) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{ns}({key})` takes no value: write `#[{ns}({key})]`"
        )));
    }
    Ok(())
}

/// Remembers `value` for `key`, or fails if `key` was given already.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta<'_>,
    ns: &str,
    key: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("`{ns}({key})` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// The path in `crate = "..."`.
pub(crate) fn crate_path(meta: &ParseNestedMeta<'_>, ns: &str) -> syn::Result<Path> {
    string_value(meta, ns, "crate")?.parse::<Path>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{ns}(crate = ...)` takes a path to switchboard, such as `crate = \"::switchboard\"`"),
        )
    })
}

/// The default path to switchboard.
pub(crate) fn default_crate_path() -> Path {
    syn::parse_quote!(::switchboard)
}

fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}
