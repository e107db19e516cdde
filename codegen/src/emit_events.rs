//! The event emitter: per service with events, one enum `<Service>Event` whose variants are
//! its current events with their params as typed fields, implementing the support crate's
//! `Event` (its wire name, and its params written at a subscriber's versions by the support
//! crate's conversion) and `EventSet` (its names, and decoding a notification: params checked
//! against the published JSON Schema, as a server checks a method's, then read). Events a
//! schema has removed are left out: a current server never sends them, and a client passes
//! them through as unknown.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::{
    ir::{EventIr, SchemaIr, ServiceIr},
    naming::{event_enum_name, event_params_def, field_ident, to_screaming_snake, variant_name},
    rust_syntax::{doc, insert_params, params_local, type_tokens},
};

/// Emits every service's event enum.
pub fn emit_events(ir: &SchemaIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let enums = ir.services.iter().filter(|service| service.current_events().next().is_some());
    let items = enums.map(|service| emit_event_enum(service, wire, rpc));
    quote! { #(#items)* }
}

fn event_doc(event: &EventIr) -> String {
    let mut text = format!("`{}`: {}\n\nSince protocol version {}.", event.wire_name, event.description, event.since);
    if let Some(deprecated) = event.deprecated {
        text.push_str(&format!(" Deprecated since {deprecated}."));
    }
    text
}

/// What the enum's items all say of one event.
struct Variant<'e, 's> {
    event: &'e EventIr<'s>,
    /// The variant's name.
    ident: Ident,
    /// The associated constant holding its wire name.
    name_const: Ident,
    /// The Rust names of its params, in order.
    params: Vec<Ident>,
}

impl<'e, 's> Variant<'e, 's> {
    fn new(event: &'e EventIr<'s>) -> Self {
        Variant {
            event,
            ident: format_ident!("{}", variant_name(event.name)),
            name_const: format_ident!("{}", to_screaming_snake(&variant_name(event.name))),
            params: event.params.iter().map(|param| field_ident(param.name)).collect(),
        }
    }

    /// The variant's declaration: its params as documented fields, optional ones as `Option`.
    fn declaration(&self) -> TokenStream {
        let Variant { event, ident, params, .. } = self;
        let docs = doc(&event_doc(event));
        let fields = event.params.iter().zip(params).map(|(param, field)| {
            let ty = type_tokens(&param.rust_type);
            let ty = if param.required {
                ty
            } else {
                quote! { Option<#ty> }
            };
            let mut text = param.description.to_string();
            if let Some(since) = param.since.filter(|since| *since > event.since) {
                text.push_str(&format!("\n\nSince protocol version {since}."));
            }
            let docs = doc(&text);
            quote! { #docs #field: #ty }
        });
        if params.is_empty() {
            quote! { #docs #ident, }
        } else {
            quote! { #docs #ident { #(#fields,)* }, }
        }
    }

    /// `Self::Variant { a, b }` (or `Self::Variant`), binding every param.
    fn pattern(&self) -> TokenStream {
        let Variant { ident, params, .. } = self;
        if params.is_empty() {
            quote! { Self::#ident }
        } else {
            quote! { Self::#ident { #(#params),* } }
        }
    }

    /// The arm of `to_params`: each param given, as wire JSON at its current version.
    fn to_params_arm(&self, wire: &syn::Path) -> TokenStream {
        let pattern = self.pattern();
        let inserts = insert_params(&self.event.params, &self.params, &params_local(), wire);
        quote! { #pattern => { #inserts } }
    }

    /// The arm of `decode`: the params checked against the schema, then read.
    fn decode_arm(&self, rpc: &syn::Path) -> TokenStream {
        let Variant { event, ident, name_const, params } = self;
        let def = event_params_def(event.service, event.name);
        let names = event.params.iter().map(|param| param.wire_name);
        let map = params_local();
        let reads = event.params.iter().zip(params).map(|(param, field)| {
            let name = param.wire_name;
            if param.required {
                quote! { #field: #rpc::events::required_event_param(&#map, method, #name)? }
            } else {
                quote! { #field: #rpc::events::event_param(&#map, method, #name)? }
            }
        });
        let value = if params.is_empty() {
            quote! { Self::#ident }
        } else {
            quote! { Self::#ident { #(#reads),* } }
        };
        let binding = if params.is_empty() {
            quote! { _ }
        } else {
            quote! { #map }
        };
        quote! {
            Self::#name_const => {
                let #binding = #rpc::events::event_params(JSON_SCHEMA, #def, method, &[#(#names),*], params)?;
                Ok(Some(#value))
            }
        }
    }
}

/// One service's event enum and its implementations.
fn emit_event_enum(service: &ServiceIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let enum_ident = format_ident!("{}", event_enum_name(service.name));
    let variants: Vec<Variant> = service.current_events().map(Variant::new).collect();
    let enum_doc = doc(&format!(
        "The events of the `{}` service: what its server publishes through a `Publisher<{enum_ident}>`,\nand what a subscribed client's `EventStream<{enum_ident}>` decodes.",
        service.name
    ));
    let declarations = variants.iter().map(Variant::declaration);
    let const_docs = variants.iter().map(|variant| format!(" The wire name of [`Self::{}`].", variant.ident));
    let consts: Vec<&Ident> = variants.iter().map(|variant| &variant.name_const).collect();
    let wire_names: Vec<&str> = variants.iter().map(|variant| variant.event.wire_name.as_str()).collect();
    let name_arms = variants.iter().map(|variant| {
        let (ident, name_const) = (&variant.ident, &variant.name_const);
        if variant.params.is_empty() {
            quote! { Self::#ident => Self::#name_const, }
        } else {
            quote! { Self::#ident { .. } => Self::#name_const, }
        }
    });
    let to_params_arms = variants.iter().map(|variant| variant.to_params_arm(wire));
    let decode_arms = variants.iter().map(|variant| variant.decode_arm(rpc));
    let map = params_local();
    // With no params anywhere, nothing is ever inserted.
    let mutability = if variants.iter().any(|variant| !variant.params.is_empty()) {
        quote! { mut }
    } else {
        quote! {}
    };
    quote! {
        #enum_doc
        #[derive(Clone, Debug, PartialEq)]
        pub enum #enum_ident {
            #(#declarations)*
        }

        impl #enum_ident {
            #(#[doc = #const_docs] pub const #consts: &'static str = #wire_names;)*
        }

        impl #rpc::events::Event for #enum_ident {
            fn name(&self) -> &'static str {
                match self { #(#name_arms)* }
            }

            fn to_params(&self, manifest: &#wire::Manifest) -> Result<serde_json::Map<String, serde_json::Value>, #wire::WireError> {
                let #mutability #map = serde_json::Map::new();
                match self { #(#to_params_arms)* }
                #rpc::events::params_at(&REGISTRY, #map, manifest)
            }
        }

        impl #rpc::events::EventSet for #enum_ident {
            const NAMES: &'static [&'static str] = &[#(Self::#consts),*];

            fn decode(method: &str, params: &serde_json::Value) -> Result<Option<Self>, #wire::WireError> {
                match method {
                    #(#decode_arms)*
                    _ => Ok(None),
                }
            }
        }
    }
}
