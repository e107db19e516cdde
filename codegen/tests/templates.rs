//! The template-driven emitter: a user's template directory emits a language the repository
//! has no templates for, without Rust changes; strict mode, escaping and the path rules.

use std::{
    fs,
    path::{Path, PathBuf},
};

use vproto_codegen::{emit_templates::TemplateError, ir::view::SchemaView, Generator};

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/vproto.json")
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

fn view() -> SchemaView {
    Generator::new(schema()).with_view().generate().unwrap_or_else(|d| panic!("{d}")).view.expect("asked for")
}

/// A tiny "Lua" client: a module of method constants, one file per object with its current
/// fields, a partial, and a static file copied as it is.
#[test]
fn a_user_template_directory_emits_a_third_language() {
    let templates = tempfile::tempdir().unwrap();
    write(
        templates.path(),
        &[
            (
                "methods.lua.hbs",
                "-- {{protocol.name}} {{protocol.version}}\nlocal M = {}\n{{#each methods}}M.{{screaming_snake_case service}}_{{screaming_snake_case name}} = {{json wire_name}}\n{{/each}}return M\n",
            ),
            ("objects/[objects].lua.hbs", "{{#with item}}{{> header}}return { name = {{json name}}, version = {{json version}}, fields = { {{#each current_fields}}{{json name}}, {{/each}}} }\n{{/with}}"),
            ("header.partial.hbs", "-- {{name}}: generated\n"),
            ("runtime/init.lua", "-- copied {{unchanged}}\n"),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let written = Generator::new(schema()).write_templates(templates.path(), out.path()).unwrap();
    let view = view();
    assert_eq!(
        written.len(),
        2 + view.objects.len(),
        "methods.lua, runtime/init.lua and one file per object: {written:?}"
    );
    assert_eq!(fs::read_to_string(out.path().join("runtime/init.lua")).unwrap(), "-- copied {{unchanged}}\n");
    let methods = fs::read_to_string(out.path().join("methods.lua")).unwrap();
    assert!(methods.starts_with(&format!("-- vproto {}\n", view.protocol.version)), "{methods}");
    for method in &view.methods {
        let constant =
            format!("M.{}_{} = \"{}\"\n", method.service.to_uppercase(), method.name.to_uppercase(), method.wire_name);
        assert!(methods.contains(&constant), "{constant} missing from:\n{methods}");
    }
    for object in &view.objects {
        let text = fs::read_to_string(out.path().join(format!("objects/{}.lua", object.name))).unwrap();
        let fields: String = object.current_fields.iter().map(|field| format!("\"{}\", ", field.name)).collect();
        assert_eq!(
            text,
            format!(
                "-- {}: generated\nreturn {{ name = \"{}\", version = \"{}\", fields = {{ {fields}}} }}\n",
                object.name, object.name, object.version
            )
        );
    }
}

#[test]
fn strict_mode_names_the_template_and_the_missing_key() {
    let templates = tempfile::tempdir().unwrap();
    write(
        templates.path(),
        &[("ok.txt.hbs", "{{protocol.name}}\n"), ("broken.txt.hbs", "line one\n{{protocol.no_such_key}}\n")],
    );
    let error = view_render(templates.path()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, TemplateError::Render { .. }), "{text}");
    assert!(text.contains("broken.txt.hbs") && text.contains("no_such_key"), "{text}");
}

#[test]
fn a_template_that_does_not_parse_is_named() {
    let templates = tempfile::tempdir().unwrap();
    write(templates.path(), &[("bad.txt.hbs", "{{#each methods}}unclosed\n")]);
    let error = view_render(templates.path()).unwrap_err();
    assert!(matches!(error, TemplateError::Parse { .. }) && error.to_string().contains("bad.txt.hbs"), "{error}");
}

#[test]
fn html_outputs_are_escaped_and_code_is_not() {
    let templates = tempfile::tempdir().unwrap();
    write(
        templates.path(),
        &[("a.html.hbs", "{{json protocol.name}}|{{{json protocol.name}}}"), ("a.py.hbs", "{{json protocol.name}}")],
    );
    let rendered = view_render(templates.path()).unwrap();
    let name = view().protocol.name;
    assert_eq!(String::from_utf8_lossy(&rendered[Path::new("a.html")]), format!("&quot;{name}&quot;|\"{name}\""));
    assert_eq!(String::from_utf8_lossy(&rendered[Path::new("a.py")]), format!("\"{name}\""));
}

#[test]
fn a_path_naming_two_lists_is_refused() {
    let templates = tempfile::tempdir().unwrap();
    write(templates.path(), &[("[objects]-[methods].txt.hbs", "x")]);
    let error = view_render(templates.path()).unwrap_err();
    assert!(matches!(error, TemplateError::Path { .. }) && error.to_string().contains("more than one list"), "{error}");
}

#[test]
fn a_missing_template_directory_is_a_read_error() {
    let error = view_render(Path::new("/nonexistent/templates")).unwrap_err();
    assert!(
        matches!(error, TemplateError::Read { .. }) && error.to_string().contains("/nonexistent/templates"),
        "{error}"
    );
}

/// Each object version lists the fields it carries; `added` and `removed` are the difference
/// with the version before, and the current version carries exactly the current fields.
#[test]
fn object_versions_agree_with_their_fields() {
    let view = view();
    for object in &view.objects {
        let mut previous: Vec<String> = Vec::new();
        for version in &object.versions {
            let mut expected: Vec<String> =
                previous.iter().filter(|name| !version.removed.contains(name)).cloned().collect();
            expected.extend(version.added.iter().cloned());
            let mut carried = version.field_names.clone();
            expected.sort();
            carried.sort();
            assert_eq!(carried, expected, "{} {}", object.name, version.version);
            previous = version.field_names.clone();
        }
        let current = object.versions.last().expect("every object has a version");
        assert_eq!(current.version, object.version);
        let names: Vec<&str> = object.current_fields.iter().map(|field| field.name.as_str()).collect();
        assert_eq!(current.field_names, names, "{}", object.name);
    }
}

fn view_render(dir: &Path) -> Result<vproto_codegen::emit_templates::Rendered, TemplateError> {
    Generator::new(schema()).with_view().generate().unwrap_or_else(|d| panic!("{d}")).render_templates(dir)
}

#[test]
fn a_generator_not_asked_for_the_view_does_not_build_it() {
    let generated = Generator::new(schema()).generate().unwrap_or_else(|d| panic!("{d}"));
    assert!(generated.view.is_none());
    let error = generated.render_templates(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
    assert!(matches!(error, TemplateError::NoView), "{error}");
}
