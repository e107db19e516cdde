//! The service emitter: declared errors (`ProtocolError`, a `DeclaredError` of the support
//! crate, which owns `ServiceError` and `ClientError` over it), one trait per service with typed
//! async methods answering an `Answer<T>` (a result with the versions to write it at), a
//! dispatcher (`<Service>Server`) that validates params against the published JSON Schema
//! before calling the trait and writes the answer at the chosen versions, and a typed client
//! (`<Service>Client`) that backlevels objects on UnsupportedVersion and, for a service with
//! events, subscribes to them (the `<Service>Event` enum of `emit_events`).

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::{
    ir::{MethodIr, SchemaIr, ServiceIr},
    naming::{event_enum_name, field_ident, params_def, service_ident, SUBSCRIBE_METHOD},
    rust_syntax::{doc, insert_params, params_local, type_tokens},
};

/// Emits errors, service traits, dispatchers and clients.
pub fn emit_services(ir: &SchemaIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let mut items = vec![emit_errors(ir, wire, rpc), emit_http_bindings(ir, rpc), emit_method_roles(ir)];
    items.extend(ir.services.iter().map(|service| emit_service(ir, service, wire, rpc)));
    quote! { #(#items)* }
}

fn emit_errors(ir: &SchemaIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let errors = &ir.errors;
    let variants: Vec<_> = errors.iter().map(|error| format_ident!("{}", error.name)).collect();
    let names = errors.iter().map(|error| error.name);
    let codes = errors.iter().map(|error| error.code);
    let docs = errors.iter().map(|e| format!(" {} (code {}, since {}).", e.description, e.code, e.since));
    let fields = errors.iter().map(|e| match &e.data {
        Some(data) => {
            let ty = type_tokens(&data.rust_type);
            quote! { (#ty) }
        }
        None => quote! {},
    });
    let to_rpc_arms = errors.iter().zip(&variants).map(|(e, v)| {
        let message = e.message;
        match &e.data {
            Some(_) => quote! { Self::#v(data) => (#message, Some(#wire::WireValue::to_wire(data))), },
            None => quote! { Self::#v => (#message, None), },
        }
    });
    let patterns = errors.iter().zip(&variants).map(|(e, v)| match &e.data {
        Some(_) => quote! { Self::#v(_) },
        None => quote! { Self::#v },
    });
    let patterns: Vec<_> = patterns.collect();
    // `match self {}` is rejected for a reference to an empty enum; `*self` is fine there.
    let subject = if errors.is_empty() {
        quote! { *self }
    } else {
        quote! { self }
    };
    let from_rpc = errors.iter().zip(&variants).map(|(e, v)| {
        let (name, code) = (e.name, e.code);
        match &e.data {
            Some(_) => quote! {
                #code => {
                    let data = error.data.as_ref().unwrap_or(&serde_json::Value::Null);
                    Some(#wire::WireValue::from_wire(data, &#wire::WirePath::root().field(#name)).map(Self::#v))
                }
            },
            None => quote! { #code => Some(Ok(Self::#v)), },
        }
    });
    quote! {
        /// The errors the schema declares, with their typed data.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ProtocolError {
            #(#[doc = #docs] #variants #fields,)*
        }

        impl #rpc::DeclaredError for ProtocolError {
            fn name(&self) -> &'static str {
                match #subject { #(#patterns => #names,)* }
            }

            fn code(&self) -> i64 {
                match #subject { #(#patterns => #codes,)* }
            }

            fn to_rpc(&self) -> #rpc::RpcError {
                let (message, data): (&str, Option<serde_json::Value>) = match #subject { #(#to_rpc_arms)* };
                #rpc::RpcError { code: self.code(), message: message.to_string(), data }
            }

            fn from_rpc(error: &#rpc::RpcError) -> Option<Result<Self, #wire::WireError>> {
                match error.code {
                    #(#from_rpc)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for ProtocolError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&#rpc::DeclaredError::to_rpc(self), f)
            }
        }

        impl std::error::Error for ProtocolError {}

        /// Why a service method failed: a declared error, or an internal one.
        pub type ServiceError = #rpc::ServiceError<ProtocolError>;

        /// Why a client call failed: a declared error the server answered, or another failure.
        pub type ClientError = #rpc::ClientError<ProtocolError>;
    }
}

fn method_doc(method: &MethodIr) -> String {
    let mut text =
        format!(" `{}`: {}\n\n Since protocol version {}.", method.wire_name, method.description, method.since);
    if let Some(deprecated) = method.deprecated {
        text.push_str(&format!(" Deprecated since {deprecated}."));
    }
    if let Some(http) = &method.http {
        text.push_str(&format!(" Bound to HTTP `{} {}`", http.method.as_str(), http.path));
        match http.body {
            Some(body) => text.push_str(&format!(" (the body is `{body}`).")),
            None => text.push('.'),
        }
    }
    if !method.errors.is_empty() {
        let names: Vec<&str> = method.errors.iter().map(|error| error.name).collect();
        text.push_str(&format!(" Errors: {}.", names.join(", ")));
    }
    text
}

/// What the trait, the dispatcher and the client all say of one method.
struct Signature<'m, 's> {
    method: &'m MethodIr<'s>,
    /// The method's doc comment.
    doc: String,
    /// The Rust name of the trait's and the client's method.
    ident: Ident,
    /// The Rust names of its params, in order.
    params: Vec<Ident>,
    /// The result's Rust type; `()` without one.
    result: TokenStream,
}

impl<'m, 's> Signature<'m, 's> {
    fn new(method: &'m MethodIr<'s>) -> Self {
        let result = match &method.result {
            Some(result) => type_tokens(&result.rust_type),
            None => quote! { () },
        };
        Signature {
            method,
            doc: method_doc(method),
            ident: field_ident(method.name),
            params: method.params.iter().map(|param| field_ident(param.name)).collect(),
            result,
        }
    }
}

/// The method of the service trait: typed params, and an answer a handler chooses the versions of.
fn trait_method(signature: &Signature, rpc: &syn::Path) -> TokenStream {
    let Signature { method, doc, ident, params, result } = signature;
    let param_types = method.params.iter().map(|param| {
        let ty = type_tokens(&param.rust_type);
        if param.required {
            ty
        } else {
            quote! { Option<#ty> }
        }
    });
    // A handler answers a result with the versions to write it at; no result, nothing to choose.
    let answer_ty = match &method.result {
        Some(_) => quote! { #rpc::Answer<#result> },
        None => quote! { () },
    };
    quote! {
        #[doc = #doc]
        fn #ident(&self, #(#params: #param_types),*) -> impl std::future::Future<Output = Result<#answer_ty, ServiceError>> + Send;
    }
}

/// The dispatcher's match arm for one method: name the params, answer UnsupportedVersion,
/// validate, read, call the handler and write its answer.
fn dispatch_arm(ir: &SchemaIr, signature: &Signature, rpc: &syn::Path) -> TokenStream {
    let Signature { method, ident, params: param_idents, .. } = signature;
    let wire_name = &method.wire_name;
    let param_names: Vec<&str> = method.params.iter().map(|param| param.wire_name).collect();
    let params_def = params_def(method.service, method.name);
    let declared = method.errors.iter().map(|error| error.name);
    // The params map, under a name no param's ident can shadow.
    let map = params_local();
    let reads = method.params.iter().zip(param_idents).map(|(param, ident)| {
        let (name, ty) = (param.wire_name, type_tokens(&param.rust_type));
        if param.required {
            quote! {
                let #ident: #ty = #rpc::read_param(&#map, #name)?
                    .ok_or_else(|| #rpc::invalid_params(vec![(format!("/{}", #name), "missing required param".into())]))?;
            }
        } else {
            quote! { let #ident: Option<#ty> = #rpc::read_param(&#map, #name)?; }
        }
    });
    let answer = if method.result.is_some() {
        quote! { result.into_result(&REGISTRY, #wire_name) }
    } else {
        quote! { let () = result; Ok(serde_json::Value::Null) }
    };
    let negotiate = match ir.unsupported_version.as_ref().filter(|_| method.negotiates) {
        Some(unsupported) => {
            let (code, message) = (unsupported.code, unsupported.message);
            quote! {
                if let Some((object, max_version)) = #rpc::newer_than_supported(&REGISTRY, &#map) {
                    return Err(#rpc::RpcError::new(#code, #message)
                        .with_data(serde_json::json!({"object": object, "max_version": max_version.to_string()})));
                }
            }
        }
        None => quote! {},
    };
    let validate = if param_names.is_empty() {
        quote! { #rpc::validate_params(JSON_SCHEMA, #params_def, #map)?; }
    } else {
        quote! { let #map = #rpc::validate_params(JSON_SCHEMA, #params_def, #map)?; }
    };
    // A role the method is not open to learns nothing more of it, not even whether its params are valid.
    let roles = &method.roles;
    let check_role = if roles.is_empty() {
        quote! {}
    } else {
        quote! { #rpc::roles::check(#wire_name, &[#(#roles),*])?; }
    };
    quote! {
        #wire_name => {
            #check_role
            let #map = params.into_named(&[#(#param_names),*])?;
            #negotiate
            #validate
            #(#reads)*
            let result = self.0.#ident(#(#param_idents),*).await
                .map_err(|error| error.into_rpc(#wire_name, &[#(#declared),*]))?;
            #answer
        }
    }
}

/// The client's method: params by reference, a call (or notification) that backlevels and
/// retries once on UnsupportedVersion when the schema negotiates, and the result decoded.
fn client_method(ir: &SchemaIr, signature: &Signature, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let Signature { method, doc, ident, params: param_idents, result: result_ty } = signature;
    let wire_name = &method.wire_name;
    let unsupported_code = ir.unsupported_version.as_ref().map(|error| error.code);
    let client_args = method.params.iter().zip(param_idents).map(|(param, ident)| {
        let ty = type_tokens(&param.rust_type);
        if param.required {
            quote! { #ident: &#ty }
        } else {
            quote! { #ident: Option<&#ty> }
        }
    });
    let map = params_local();
    let inserts = insert_params(&method.params, param_idents, &map, wire);
    let call = if method.notification {
        quote! {
            self.transport.notify(#wire_name, serde_json::Value::Object(#map)).await?;
            Ok(())
        }
    } else {
        let decode = match &method.result {
            Some(_) => quote! {
                #wire::WireValue::from_wire(&value, &#wire::WirePath::root().field("result"))
                    .map_err(|e| ClientError::Call(#rpc::decode_error(e)))
            },
            None => quote! { let _ = value; Ok(()) },
        };
        let retry = match unsupported_code {
            Some(code) => quote! {
                let value = match self.transport.request(#wire_name, serde_json::Value::Object(#map.clone())).await {
                    Err(#rpc::CallError::Rpc(error)) if error.code == #code => {
                        // Seed 000: backlevel the object to the version the server
                        // reported and retry once.
                        if !backlevel_params(&mut #map, &error) {
                            return Err(#rpc::CallError::Rpc(error).into());
                        }
                        self.transport.request(#wire_name, serde_json::Value::Object(#map)).await?
                    }
                    other => other?,
                };
            },
            None => quote! {
                let value = self.transport.request(#wire_name, serde_json::Value::Object(#map)).await?;
            },
        };
        quote! { #retry #decode }
    };
    // The map is filled with the params, and refilled by a backlevel retry.
    let mutability = if !method.params.is_empty() || (unsupported_code.is_some() && !method.notification) {
        quote! { mut }
    } else {
        quote! {}
    };
    quote! {
        #[doc = #doc]
        pub async fn #ident(&self, #(#client_args),*) -> Result<#result_ty, ClientError> {
            let #mutability #map = serde_json::Map::new();
            #inserts
            #call
        }
    }
}

/// One service: its trait, its dispatcher and its client.
fn emit_service(ir: &SchemaIr, service: &ServiceIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    let service_name = service.name;
    let trait_ident = service_ident(service_name, "Service");
    let server_ident = service_ident(service_name, "Server");
    let client_ident = service_ident(service_name, "Client");
    let service_doc = format!(" {}\n\n Since protocol version {}.", service.description, service.since);
    let signatures: Vec<Signature> = service.methods.iter().map(Signature::new).collect();
    let trait_methods = signatures.iter().map(|signature| trait_method(signature, rpc));
    let arms = signatures.iter().map(|signature| dispatch_arm(ir, signature, rpc));
    let client_methods = signatures.iter().map(|signature| client_method(ir, signature, wire, rpc));
    let wire_names = service.methods.iter().map(|method| &method.wire_name);
    let subscribe = subscribe_method(service, wire, rpc);
    let server_doc =
        format!(" Serves `{service_name}.*` from a [`{trait_ident}`], validating params against the schema.");
    let client_doc = format!(" A typed client of the `{service_name}` service.");
    quote! {
        #[doc = #service_doc]
        pub trait #trait_ident: Send + Sync + 'static {
            #(#trait_methods)*
        }

        #[doc = #server_doc]
        pub struct #server_ident<S>(pub std::sync::Arc<S>);

        impl<S> Clone for #server_ident<S> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<S: #trait_ident> #rpc::Handler for #server_ident<S> {
            fn handle<'a>(&'a self, method: &'a str, params: #rpc::Params) -> #rpc::BoxFuture<'a, Result<serde_json::Value, #rpc::RpcError>> {
                Box::pin(async move {
                    match method {
                        #(#arms)*
                        other => Err(#rpc::RpcError::method_not_found(other)),
                    }
                })
            }

            fn methods(&self) -> Vec<&'static str> {
                vec![#(#wire_names),*]
            }
        }

        #[doc = #client_doc]
        pub struct #client_ident<T> {
            transport: T,
        }

        impl<T: #rpc::ClientTransport> #client_ident<T> {
            /// A client calling through `transport`.
            pub fn new(transport: T) -> Self {
                Self { transport }
            }

            #(#client_methods)*
            #subscribe
        }
    }
}

/// The client's `subscribe` to its service's events, when the service has any: the stream of
/// the generated event enum, decoded by the support crate's `EventStream`.
fn subscribe_method(service: &ServiceIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    if service.current_events().next().is_none() {
        return quote! {};
    }
    let events = format_ident!("{}", event_enum_name(service.name));
    let subscribe = format_ident!("{SUBSCRIBE_METHOD}");
    let doc = doc(&format!(
        "Subscribes to `events` of the `{}` service (wire names, such as [`{events}::NAMES`]; a name\nthis client does not know comes through as `Received::Unknown`), every versioned object in them\nwritten at the version `versions` names for it (its newest when it names none).",
        service.name
    ));
    quote! {
        #doc
        pub async fn #subscribe(&self, events: &[&str], versions: #wire::Manifest) -> Result<#rpc::events::EventStream<#events>, ClientError> {
            Ok(#rpc::events::EventStream::subscribe(&self.transport, events, versions).await?)
        }
    }
}

/// The hand-off point for negotiation: emitted once when the schema declares UnsupportedVersion.
pub fn emit_backlevel(ir: &SchemaIr, wire: &syn::Path, rpc: &syn::Path) -> TokenStream {
    if ir.unsupported_version.is_none() {
        return quote! {};
    }
    quote! {
        /// Converts every object named in an UnsupportedVersion error's data, in any param
        /// and at any depth, down to the version the server supports; false when nothing
        /// could be converted (then retrying is pointless).
        fn backlevel_params(params: &mut serde_json::Map<String, serde_json::Value>, error: &#rpc::RpcError) -> bool {
            let data = error.data.as_ref();
            let object = data.and_then(|d| d.get("object")).and_then(serde_json::Value::as_str);
            let version = data.and_then(|d| d.get("max_version")).and_then(serde_json::Value::as_str).and_then(|v| v.parse::<#wire::Version>().ok());
            let (Some(object), Some(version)) = (object, version) else { return false };
            let mut converted = 0;
            for (name, value) in params.iter_mut() {
                match #wire::backport_named(&REGISTRY, value, object, version, &#wire::WirePath::root().field(name)) {
                    Ok(count) => converted += count,
                    Err(_) => return false,
                }
            }
            converted > 0
        }
    }
}

/// The `METHOD_ROLES` table: each method the schema opens to some roles only, with those roles.
fn emit_method_roles(ir: &SchemaIr) -> TokenStream {
    let methods = ir.services.iter().flat_map(|service| &service.methods).filter(|method| !method.roles.is_empty());
    let rows = methods.map(|method| {
        let (wire_name, roles) = (&method.wire_name, &method.roles);
        quote! { (#wire_name, &[#(#roles),*]) }
    });
    quote! {
        /// The methods the schema opens to some roles only, with those roles (every other method is
        /// open to every caller); the dispatchers refuse other roles with -32003 Forbidden.
        pub const METHOD_ROLES: &[(&str, &[&str])] = &[#(#rows),*];
    }
}

fn emit_http_bindings(ir: &SchemaIr, rpc: &syn::Path) -> TokenStream {
    let methods = ir.services.iter().flat_map(|service| &service.methods);
    let bindings = methods.filter_map(|method| {
        let http = method.http.as_ref()?;
        let (service, verb, path, wire_name) = (method.service, http.method.as_str(), http.path, &method.wire_name);
        let body = match http.body {
            Some(param) => quote! { Some(#param) },
            None => quote! { None },
        };
        Some(quote! {
            #rpc::HttpBinding {
                service: #service,
                http_method: #verb,
                path: #path,
                method: #wire_name,
                body: #body,
            }
        })
    });
    quote! {
        /// The REST routes the schema binds to methods, for HTTP transports.
        pub const HTTP_BINDINGS: &[#rpc::HttpBinding] = &[#(#bindings),*];
    }
}
