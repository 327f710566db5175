//! `#[derive(Event)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr, Path};

use crate::attrs;
use crate::fields::{self, FieldRef};

const NS: &str = "event";
const STRUCT_KEYS: &[&str] = &["type", "coalescible", "crate"];
const FIELD_KEYS: &[&str] = &["timestamp", "type"];

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
        }
    })
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
