//! Field-level validation errors, collected so that one answer lists every
//! bad field at once (SPEC.md §5).

use std::collections::BTreeMap;

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
