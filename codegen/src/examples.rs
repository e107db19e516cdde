//! Method and event examples must be true: each example's params and result are
//! checked against the JSON Schema the generator publishes, so docs, the
//! OpenRPC document and the conformance suite never show an invalid call or payload.

use serde_json::{Map, Value};

use crate::{
    diagnostic::{pointer, Diagnostics},
    emit_json_schema::json_schema,
    ir::SchemaIr,
    model::Schema,
    naming::{event_params_def, params_def, result_def},
};

/// Checks every example of every method and event; a schema that failed [`crate::check`] is skipped.
pub fn check_examples(schema: &Schema, out: &mut Diagnostics) {
    let has_examples = schema.services.values().any(|service| {
        service.methods.values().any(|method| !method.examples.is_empty())
            || service.events.values().any(|event| !event.examples.is_empty())
    });
    if !has_examples {
        // Building the JSON Schema costs time in proportion to the whole schema.
        return;
    }
    let ir = SchemaIr::new(schema);
    let document = json_schema(&ir);
    let formats = crate::check::KNOWN_FORMATS;
    for (service_name, service) in &schema.services {
        for (method_name, method) in &service.methods {
            for (index, example) in method.examples.iter().enumerate() {
                let index = index.to_string();
                let at = pointer(&["services", service_name, "methods", method_name, "examples", &index]);
                let params =
                    Value::Object(example.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Map<_, _>>());
                validate(
                    &document,
                    &params_def(service_name, method_name),
                    &params,
                    &format!("{at}/params"),
                    formats,
                    out,
                );
                match (&example.result, &method.result) {
                    (Some(result), Some(_)) => validate(
                        &document,
                        &result_def(service_name, method_name),
                        result,
                        &format!("{at}/result"),
                        formats,
                        out,
                    ),
                    (Some(_), None) => {
                        out.push(format!("{at}/result"), "the method has no result", "remove the example's result")
                    }
                    _ => {}
                }
            }
        }
        for (event_name, event) in &service.events {
            for (index, example) in event.examples.iter().enumerate() {
                let index = index.to_string();
                let at = pointer(&["services", service_name, "events", event_name, "examples", &index, "params"]);
                let params = Value::Object(example.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
                validate(&document, &event_params_def(service_name, event_name), &params, &at, formats, out);
            }
        }
    }
}

fn validate(document: &Value, def: &str, instance: &Value, at: &str, formats: &[&str], out: &mut Diagnostics) {
    let mut schema = document.clone();
    schema["$ref"] = Value::String(format!("#/$defs/{def}"));
    let mut options = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).should_validate_formats(true);
    for format in formats {
        // The generated code checks these formats exactly; here any string
        // passes the format and the Rust tests cover format checking.
        options = options.with_format(*format, |_: &str| true);
    }
    let validator = match options.build(&schema) {
        Ok(validator) => validator,
        Err(error) => {
            out.push(at, format!("cannot check the example: {error}"), "report this as a vproto bug");
            return;
        }
    };
    for error in validator.iter_errors(instance) {
        out.push(
            format!("{at}{}", error.instance_path()),
            format!("the example does not fit its schema: {error}"),
            "fix the example so that it is valid",
        );
    }
}
