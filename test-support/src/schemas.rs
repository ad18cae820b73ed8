//! The JSON Schemas of `schemas/` (2020-12), for checking answers, outputs and files against
//! the documented shapes in every suite.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::{json, Value};

/// The `$id` prefix of every schema file in `schemas/`.
pub const SCHEMA_BASE: &str = "https://kt-as.dev/schemas/";

/// Every `schemas/*.schema.json`, registered under its `$id` (so that their `$ref`s to each
/// other resolve offline), and the validators compiled from them so far.
pub struct Schemas {
    resources: Vec<(String, Value)>,
    /// By reference; each compiled on its first use (compiling all of them would cost every
    /// test process that checks one schema the time of all).
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The schemas, loaded once per test process.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(Schemas::load)
}

/// The `schemas/` folder of the workspace.
pub fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("schemas")
}

impl Schemas {
    /// Reads `schemas/*.schema.json`; panics on a file that is not JSON or whose `$id` is not
    /// [`SCHEMA_BASE`] and its file name.
    pub fn load() -> Schemas {
        let dir = folder();
        let mut resources = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("the schemas folder") {
            let path = entry.expect("a schemas folder entry").path();
            if !path.to_string_lossy().ends_with(".schema.json") {
                continue;
            }
            let schema: Value = serde_json::from_slice(&std::fs::read(&path).expect("a schema"))
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let id = schema["$id"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no $id", path.display()))
                .to_owned();
            let name = path.file_name().expect("a file name").to_string_lossy();
            assert_eq!(
                id,
                format!("{SCHEMA_BASE}{name}"),
                "$id of {}",
                path.display()
            );
            resources.push((id, schema));
        }
        Schemas {
            resources,
            validators: Mutex::default(),
        }
    }

    /// The validator of `reference`: a file name in `schemas/`, with an optional
    /// `#/$defs/…` fragment.
    fn validator(&self, reference: &str) -> Arc<jsonschema::Validator> {
        let mut validators = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(validator) = validators.get(reference) {
            return validator.clone();
        }
        let mut options = jsonschema::options();
        for (id, schema) in &self.resources {
            options = options.with_resource(
                id.clone(),
                jsonschema::Resource::from_contents(schema.clone())
                    .unwrap_or_else(|e| panic!("{id}: {e}")),
            );
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("{SCHEMA_BASE}{reference}"),
        });
        let validator = Arc::new(
            options
                .build(&root)
                .unwrap_or_else(|e| panic!("cannot compile {reference}: {e}")),
        );
        validators.insert(reference.to_owned(), validator.clone());
        validator
    }

    /// The validation errors of `value` under `reference` (a file name in `schemas/`, with an
    /// optional `#/$defs/…` fragment).
    pub fn errors(&self, reference: &str, value: &Value) -> Vec<String> {
        self.validator(reference)
            .iter_errors(value)
            .map(|e| format!("{e} (at {}, schema {})", e.instance_path, e.schema_path))
            .collect()
    }

    /// Panics, listing the errors, unless `value` is valid under `reference`.
    #[track_caller]
    pub fn check(&self, reference: &str, value: &Value) {
        let errors = self.errors(reference, value);
        assert!(
            errors.is_empty(),
            "not valid under {reference}:\n  {}\n{value:#}",
            errors.join("\n  ")
        );
    }
}
