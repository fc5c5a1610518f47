//! Field-level validation errors, collected so that one answer lists every
//! bad field at once (SPEC.md §5).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `{"<field path>": ["<what is wrong>", ...]}`, in field-path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// `Ok(())` when nothing was added, else the domain error carrying them all.
    pub fn into_result(self) -> crate::Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::validation(self))
        }
    }
}

/// How deeply client data may nest (document stores refuse deeper documents).
pub const MAX_DEPTH: usize = 64;

/// Checks client data nested under `path` so that every backend stores it
/// exactly as sent: keys storable at every level, integers within the signed
/// 64-bit range, nesting at most [`MAX_DEPTH`] deep.
pub fn check_storable_value(path: &str, value: &Value, errors: &mut FieldErrors) {
    fn walk(path: &str, value: &Value, depth: usize, errors: &mut FieldErrors) {
        if depth > MAX_DEPTH {
            errors.add(
                path.to_owned(),
                format!("Nested more than {MAX_DEPTH} levels deep."),
            );
            return;
        }
        match value {
            Value::Number(n) if n.is_u64() && !n.is_i64() => {
                errors.add(
                    path.to_owned(),
                    "Integers must fit in a signed 64-bit range.",
                );
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{path}.{i}"), item, depth + 1, errors);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let child = format!("{path}.{key}");
                    if !is_storable_key(key) {
                        errors.add(
                            child.clone(),
                            "Field names must be non-empty and contain no '.' nor a leading '$'.",
                        );
                    }
                    walk(&child, item, depth + 1, errors);
                }
            }
            _ => {}
        }
    }
    walk(path, value, 1, errors);
}

/// [`check_storable_keys`] and [`check_storable_value`] for each top-level field.
pub fn check_storable_fields(map: &Map<String, Value>, errors: &mut FieldErrors) {
    check_storable_keys(map.keys(), errors);
    for (key, value) in map {
        check_storable_value(key, value, errors);
    }
}

/// Whether a client-chosen key can be stored on every backend: document
/// stores read `.` as a path separator and a leading `$` as an operator.
pub fn is_storable_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('.') && !key.starts_with('$')
}

/// Adds an error for each top-level key that [`is_storable_key`] refuses.
pub fn check_storable_keys<'a>(keys: impl Iterator<Item = &'a String>, errors: &mut FieldErrors) {
    for key in keys {
        if !is_storable_key(key) {
            errors.add(
                key.clone(),
                "Field names must be non-empty and contain no '.' nor a leading '$'.",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(value: Value) -> Vec<String> {
        let mut errors = FieldErrors::new();
        check_storable_fields(value.as_object().unwrap(), &mut errors);
        errors.fields().map(str::to_owned).collect()
    }

    #[test]
    fn nested_data_must_store_the_same_everywhere() {
        assert!(problems(json!({"a": {"b": [1, {"c": 2.5}], "d": null}})).is_empty());
        assert_eq!(
            problems(json!({"t": {"$numberLong": "5"}})),
            ["t.$numberLong"]
        );
        assert_eq!(problems(json!({"t": [{"a.b": 1}]})), ["t.0.a.b"]);
        assert_eq!(problems(json!({"big": 18446744073709551615u64})), ["big"]);
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(problems(json!({"deep": deep})).len(), 1);
    }
}
