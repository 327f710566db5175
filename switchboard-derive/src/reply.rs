//! `#[derive(Request)]` and `#[derive(Response)]`: the request id, and who
//! answered.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr, Path};

use crate::attrs;
use crate::fields;

pub(crate) fn derive_request(input: &DeriveInput) -> syn::Result<TokenStream> {
    const NS: &str = "request";
    let fields = fields::struct_fields(input, "Request")?;
    let mut krate: Option<Path> = None;
    attrs::for_each_key(&input.attrs, NS, |key, meta| match key {
        "crate" => {
            let path = attrs::crate_path(&meta, NS)?;
            attrs::set_once(&mut krate, path, &meta, NS, "crate")
        }
        _ => Err(attrs::unknown_key(&meta, NS, &["crate"])),
    })?;
    let markers = fields::markers(fields, NS, &["id"])?;
    let Some(id) = fields::pick(fields, &markers, NS, "id", &["request_id"])? else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Request)] needs the request id: mark a field with `#[request(id)]` or \
             name it `request_id` (a `String`, `&'static str` or other `AsRef<str>`)",
        ));
    };
    let krate = krate.unwrap_or_else(attrs::default_crate_path);
    let name = &input.ident;
    let id = fields::as_str(&id);
    let (impl_generics, type_generics, _) = input.generics.split_for_impl();
    let bounds = fields::event_bounds(&input.generics);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Request for #name #type_generics #bounds {
            fn request_id(&self) -> &str {
                #id
            }
        }
    })
}

pub(crate) fn derive_response(input: &DeriveInput) -> syn::Result<TokenStream> {
    const NS: &str = "response";
    let fields = fields::struct_fields(input, "Response")?;
    let mut krate: Option<Path> = None;
    let mut fixed_responder: Option<LitStr> = None;
    attrs::for_each_key(&input.attrs, NS, |key, meta| match key {
        "crate" => {
            let path = attrs::crate_path(&meta, NS)?;
            attrs::set_once(&mut krate, path, &meta, NS, "crate")
        }
        "responder" => {
            let value = attrs::string_value(&meta, NS, "responder")?;
            attrs::set_once(&mut fixed_responder, value, &meta, NS, "responder")
        }
        _ => Err(attrs::unknown_key(&meta, NS, &["responder", "crate"])),
    })?;
    let markers = fields::markers(fields, NS, &["request_id", "responder"])?;
    let Some(request_id) = fields::pick(fields, &markers, NS, "request_id", &["request_id"])?
    else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Response)] needs the id of the request it answers: mark a field with \
             `#[response(request_id)]` or name it `request_id`",
        ));
    };
    let responder = match fixed_responder {
        Some(name) => {
            if let Some((_, _, span)) = markers.iter().find(|(key, _, _)| key == "responder") {
                return Err(syn::Error::new(
                    *span,
                    "the responder is given twice: by `#[response(responder = \"...\")]` on the \
                     struct and by this field; keep one",
                ));
            }
            quote! { #name }
        }
        None => match fields::pick(fields, &markers, NS, "responder", &["responder"])? {
            Some(field) => fields::as_str(&field),
            None => {
                return Err(syn::Error::new(
                    input.ident.span(),
                    "#[derive(Response)] needs who answered: mark a field with \
                     `#[response(responder)]`, name it `responder`, or write \
                     `#[response(responder = \"name\")]` on the struct",
                ))
            }
        },
    };
    let krate = krate.unwrap_or_else(attrs::default_crate_path);
    let name = &input.ident;
    let request_id = fields::as_str(&request_id);
    let (impl_generics, type_generics, _) = input.generics.split_for_impl();
    let bounds = fields::event_bounds(&input.generics);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Response for #name #type_generics #bounds {
            fn request_id(&self) -> &str {
                #request_id
            }
            fn responder(&self) -> &str {
                #responder
            }
        }
    })
}
