//! Finding the fields a derive reads: the one marked with an attribute, or
//! else the one with a conventional name.

use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Field, Fields, Generics, Member, Type, WhereClause};

use crate::attrs;

/// A field a generated method reads.
pub(crate) struct FieldRef<'a> {
    /// `self.#member`.
    pub(crate) member: Member,
    pub(crate) ty: &'a Type,
}

/// The struct's fields; an error for enums, unions and borrowing structs,
/// which cannot be events.
pub(crate) fn struct_fields<'a>(input: &'a DeriveInput, derive: &str) -> syn::Result<&'a Fields> {
    if let Some(lifetime) = input.generics.lifetimes().next() {
        return Err(syn::Error::new(
            lifetime.span(),
            format!(
                "#[derive({derive})]: events travel as `Arc<dyn Event>` between threads and must \
                 be 'static, so they cannot borrow: own the data instead (`String`, `Arc<str>`, ...)"
            ),
        ));
    }
    match &input.data {
        Data::Struct(data) => Ok(&data.fields),
        Data::Enum(data) => Err(syn::Error::new(
            data.enum_token.span(),
            format!(
                "#[derive({derive})] supports structs only: make a struct per event type, or a \
                 struct with an enum field"
            ),
        )),
        Data::Union(data) => Err(syn::Error::new(
            data.union_token.span(),
            format!("#[derive({derive})] supports structs only, not unions"),
        )),
    }
}

/// The fields carrying a `#[ns(key)]` marker, as `(key, field)`, in field
/// order. Every marker must be one of `known` and take no value.
pub(crate) fn markers<'a>(
    fields: &'a Fields,
    ns: &str,
    known: &[&str],
) -> syn::Result<Vec<(String, FieldRef<'a>, Span)>> {
    let mut found = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        attrs::for_each_key(&field.attrs, ns, |key, meta| {
            if !known.contains(&key) {
                return Err(attrs::unknown_key(&meta, ns, known));
            }
            attrs::flag(&meta, ns, key)?;
            found.push((key.to_owned(), field_ref(field, index), meta.path.span()));
            Ok(())
        })?;
    }
    Ok(found)
}

/// The field marked `#[ns(key)]` (at most one), or else the first field
/// named one of `names`.
pub(crate) fn pick<'a>(
    fields: &'a Fields,
    markers: &[(String, FieldRef<'a>, Span)],
    ns: &str,
    key: &str,
    names: &[&str],
) -> syn::Result<Option<FieldRef<'a>>> {
    let mut marked = markers.iter().filter(|(k, _, _)| k == key);
    if let Some((_, first, _)) = marked.next() {
        if let Some((_, _, span)) = marked.next() {
            return Err(syn::Error::new(
                *span,
                format!("only one field can be `#[{ns}({key})]`"),
            ));
        }
        return Ok(Some(FieldRef {
            member: first.member.clone(),
            ty: first.ty,
        }));
    }
    for name in names {
        let named = fields
            .iter()
            .enumerate()
            .find(|(_, field)| field.ident.as_ref().is_some_and(|ident| ident == name));
        if let Some((index, field)) = named {
            return Ok(Some(field_ref(field, index)));
        }
    }
    Ok(None)
}

pub(crate) fn field_ref(field: &Field, index: usize) -> FieldRef<'_> {
    let member = match &field.ident {
        Some(ident) => Member::Named(ident.clone()),
        None => Member::Unnamed(index.into()),
    };
    FieldRef {
        member,
        ty: &field.ty,
    }
}

/// `generics`' where clause plus `T: Send + Sync + 'static` for every type
/// parameter: what any event type needs.
pub(crate) fn event_bounds(generics: &Generics) -> WhereClause {
    let mut clause = generics
        .where_clause
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(where));
    for param in generics.type_params() {
        let ident = &param.ident;
        clause.predicates.push(syn::parse_quote!(
            #ident: ::core::marker::Send + ::core::marker::Sync + 'static
        ));
    }
    clause
}

/// `::core::convert::AsRef::<str>::as_ref(&self.#member)`, with errors about
/// the field's type pointing at the field.
pub(crate) fn as_str(field: &FieldRef<'_>) -> proc_macro2::TokenStream {
    let member = &field.member;
    let ty = field.ty;
    let span = ty.span();
    let cast = quote::quote_spanned! {span=>
        <#ty as ::core::convert::AsRef<str>>::as_ref
    };
    quote! { #cast(&self.#member) }
}
