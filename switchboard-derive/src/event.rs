//! `#[derive(Event)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr, Path};

use crate::attrs;
use crate::fields::{self, FieldRef};

const NS: &str = "event";
const STRUCT_KEYS: &[&str] = &["type", "coalescible", "crate"];
const FIELD_KEYS: &[&str] = &["timestamp", "type", "trace"];

/// What `#[event(...)]` on the struct says.
struct Options {
    event_type: Option<LitStr>,
    coalescible: bool,
    krate: Option<Path>,
}

fn options(input: &DeriveInput) -> syn::Result<Options> {
    let mut options = Options {
        event_type: None,
        coalescible: false,
        krate: None,
    };
    attrs::for_each_key(&input.attrs, NS, |key, meta| match key {
        "type" => {
            let value = attrs::string_value(&meta, NS, "type")?;
            if value.value().is_empty() {
                return Err(syn::Error::new(
                    value.span(),
                    "`event(type = \"\")`: the event type cannot be empty; name it, such as \
                     `type = \"route.added\"`, or leave the attribute out to use the struct's name",
                ));
            }
            attrs::set_once(&mut options.event_type, value, &meta, NS, "type")
        }
        "coalescible" => {
            attrs::flag(&meta, NS, "coalescible")?;
            if options.coalescible {
                return Err(meta.error("`event(coalescible)` is given twice"));
            }
            options.coalescible = true;
            Ok(())
        }
        "crate" => {
            let path = attrs::crate_path(&meta, NS)?;
            attrs::set_once(&mut options.krate, path, &meta, NS, "crate")
        }
        _ => Err(attrs::unknown_key(&meta, NS, STRUCT_KEYS)),
    })?;
    Ok(options)
}

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields = fields::struct_fields(input, "Event")?;
    let options = options(input)?;
    let markers = fields::markers(fields, NS, FIELD_KEYS)?;
    let Some(timestamp) = fields::pick(fields, &markers, NS, "timestamp", &["timestamp"])? else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Event)] needs the time the event happened: add a field \
             `timestamp: switchboard::Timestamp` (set it to `Timestamp::now()` when building the \
             event), or mark a `SystemTime` field with `#[event(timestamp)]`",
        ));
    };
    let krate = options.krate.unwrap_or_else(attrs::default_crate_path);
    let name = &input.ident;
    let type_field = fields::pick(fields, &markers, NS, "type", &[])?;
    let event_type = match (options.event_type, type_field) {
        (Some(_), Some(_)) => {
            let span = markers
                .iter()
                .find(|(key, _, _)| key == "type")
                .map_or_else(|| name.span(), |(_, _, span)| *span);
            return Err(syn::Error::new(
                span,
                "the event type is given twice: by `#[event(type = \"...\")]` on the struct and \
                 by this field; keep one",
            ));
        }
        (Some(fixed), None) => quote! { #fixed },
        (None, Some(field)) => fields::as_str(&field),
        (None, None) => {
            let fixed = LitStr::new(&name.to_string(), name.span());
            quote! { #fixed }
        }
    };
    let timestamp = timestamp_expr(&timestamp);
    let coalescible = options.coalescible.then(|| {
        quote! {
            fn coalescible(&self) -> bool {
                true
            }
        }
    });
    let trace = trace_field(fields, &markers)?.map(|field| trace_methods(&field, &krate));
    let (impl_generics, type_generics, _) = input.generics.split_for_impl();
    let bounds = fields::event_bounds(&input.generics);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Event for #name #type_generics #bounds {
            fn event_type(&self) -> &str {
                #event_type
            }
            fn timestamp(&self) -> ::std::time::SystemTime {
                #timestamp
            }
            #coalescible
            #trace
        }
    })
}

/// The field marked `#[event(trace)]`, or else the one field whose type is
/// written `Option<TraceContext>` (any path ending in `TraceContext`).
fn trace_field<'a>(
    fields: &'a syn::Fields,
    markers: &[(String, FieldRef<'a>, proc_macro2::Span)],
) -> syn::Result<Option<FieldRef<'a>>> {
    if let Some(marked) = fields::pick(fields, markers, NS, "trace", &[])? {
        return Ok(Some(marked));
    }
    let mut typed = fields
        .iter()
        .enumerate()
        .filter(|(_, field)| is_option_of_trace_context(&field.ty));
    let Some((index, first)) = typed.next() else {
        return Ok(None);
    };
    if let Some((_, second)) = typed.next() {
        return Err(syn::Error::new(
            second.ty.span(),
            "two fields are `Option<TraceContext>`: mark the one that is the event's trace \
             context with `#[event(trace)]`",
        ));
    }
    Ok(Some(fields::field_ref(first, index)))
}

/// Whether `ty` is written `Option<…TraceContext>`.
fn is_option_of_trace_context(ty: &syn::Type) -> bool {
    let last = |ty: &syn::Type| match ty {
        syn::Type::Path(path) if path.qself.is_none() => path.path.segments.last().cloned(),
        _ => None,
    };
    let Some(option) = last(ty) else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &option.arguments else {
        return false;
    };
    option.ident == "Option"
        && args.args.len() == 1
        && matches!(
            args.args.first(),
            Some(syn::GenericArgument::Type(inner))
                if last(inner).is_some_and(|segment| segment.ident == "TraceContext")
        )
}

/// `trace_context` and `set_trace_context` on `field`, which must be an
/// `Option<TraceContext>` (a type error pointing at the field's type
/// otherwise).
fn trace_methods(field: &FieldRef<'_>, krate: &Path) -> TokenStream {
    let member = &field.member;
    let ty = field.ty;
    // Spanned at the field's type, so that a field of another type is an
    // error there.
    let read = quote_spanned! {ty.span()=>
        let field: &::core::option::Option<#krate::TraceContext> = &self.#member;
    };
    let write = quote_spanned! {ty.span()=>
        let field: &mut ::core::option::Option<#krate::TraceContext> = &mut self.#member;
    };
    quote! {
        fn trace_context(&self) -> ::core::option::Option<&#krate::TraceContext> {
            #read
            ::core::option::Option::as_ref(field)
        }
        fn set_trace_context(&mut self, context: ::core::option::Option<#krate::TraceContext>) {
            #write
            *field = context;
        }
    }
}

/// `SystemTime::from(self.field.clone())`, with a type error pointing at the
/// field's type.
fn timestamp_expr(field: &FieldRef<'_>) -> TokenStream {
    let member = &field.member;
    let ty = field.ty;
    let convert = quote_spanned! {ty.span()=>
        <::std::time::SystemTime as ::core::convert::From<#ty>>::from
    };
    quote! { #convert(::core::clone::Clone::clone(&self.#member)) }
}
