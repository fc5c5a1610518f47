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
/// exactly as sent: nested keys storable ([`is_storable_nested_key`]),
/// integers within the signed 64-bit range, nesting at most [`MAX_DEPTH`]
/// deep.
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
                    if !is_storable_nested_key(key) {
                        errors.add(
                            child.clone(),
                            "Nested field names must not start with '$' nor contain a NUL character.",
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

/// Whether a client-chosen field name (a top-level key, which MongoDB
/// writes as an update path, or a queue, image or phase name) can be stored
/// on every backend: document stores read `.` as a path separator and a
/// leading `$` as an operator, and MongoDB cannot store a NUL in a key.
pub fn is_storable_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('.') && !key.starts_with('$') && !key.contains('\0')
}

/// Whether a key nested inside a field's value can be stored on every
/// backend and read back unchanged. Dots and empty keys can (MongoDB stores
/// them inside a value, as upstream's server on pymongo does); a leading
/// `$` cannot (the driver reads `{"$numberLong": "5"}` as the number 5, and
/// MongoDB's updates refuse `$` names), nor a NUL (MongoDB's keys are C
/// strings).
pub fn is_storable_nested_key(key: &str) -> bool {
    !key.starts_with('$') && !key.contains('\0')
}

/// Adds an error for each top-level key that [`is_storable_key`] refuses.
pub fn check_storable_keys<'a>(keys: impl Iterator<Item = &'a String>, errors: &mut FieldErrors) {
    for key in keys {
        if !is_storable_key(key) {
            errors.add(
                key.clone(),
                "Field names must be non-empty, contain no '.' or NUL character, and not start with '$'.",
            );
        }
    }
}

/// The shape a client's JSON body may have (SPEC.md §2): how many keys one
/// object may hold, how many keys the whole body may hold, and how deeply it
/// may nest. Enforced while parsing, so an oversized body costs no more than
/// reading up to the limit it crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonShape {
    pub keys_per_object: u64,
    pub total_keys: u64,
    pub depth: u64,
}

/// The JSON pointer (RFC 6901) of a path of keys and indexes.
pub fn json_pointer<'a>(path: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for segment in path {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// What no backend can store in a key: MongoDB writes keys as C strings,
/// so a NUL ends them (the driver refuses the whole document).
const NUL_KEY: &str =
    "Field names must not contain the NUL character (\\u0000): it cannot be stored.";

/// At most this many bad keys are reported by one answer.
const MAX_REPORTED_KEYS: usize = 20;

/// Parses a client's JSON body within `shape`, refusing keys that no
/// backend can store. Malformed JSON is 400; a body over a limit of `shape`,
/// or with a NUL in a key, is 422 naming where (a JSON pointer into the
/// body). Parsing stops at the first limit crossed, so neither time nor
/// memory grows past it.
pub fn parse_json_body(bytes: &[u8], shape: &JsonShape) -> crate::Result<Value> {
    let context = ParseContext {
        shape: *shape,
        state: std::cell::RefCell::new(ParseState::default()),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(
        Node {
            context: &context,
            depth: 1,
        },
        &mut deserializer,
    )
    .and_then(|value| deserializer.end().map(|()| value));
    let state = context.state.into_inner();
    if let Some((pointer, message, problem)) = state.over_limit {
        let mut fields = FieldErrors::new();
        fields.add(pointer, problem);
        return Err(crate::Error::Validation {
            location: crate::error::Location::Json,
            message,
            fields,
        });
    }
    let value = parsed
        .map_err(|e| crate::Error::BadRequest(format!("The body is not valid JSON: {e}.")))?;
    if !state.bad_keys.is_empty() {
        let mut fields = FieldErrors::new();
        for pointer in state.bad_keys {
            fields.add(pointer, NUL_KEY);
        }
        return Err(crate::Error::validation(fields));
    }
    Ok(value)
}

struct ParseContext {
    shape: JsonShape,
    state: std::cell::RefCell<ParseState>,
}

#[derive(Default)]
struct ParseState {
    /// The keys and indexes down to the value being parsed.
    path: Vec<String>,
    total_keys: u64,
    /// The first limit crossed: (pointer, message, problem).
    over_limit: Option<(String, String, String)>,
    bad_keys: Vec<String>,
}

impl ParseContext {
    fn refuse<E: serde::de::Error>(&self, message: String, problem: String) -> E {
        let mut state = self.state.borrow_mut();
        let pointer = json_pointer(state.path.iter().map(String::as_str));
        state.over_limit = Some((pointer, message, problem));
        E::custom("over a limit of the JSON body")
    }

    fn enter<E: serde::de::Error>(&self, depth: u64) -> Result<(), E> {
        if depth > self.shape.depth {
            let limit = self.shape.depth;
            return Err(self.refuse(
                format!(
                    "The JSON body nests more than {limit} levels deep \
                     (TESTFLINGER_MAX_JSON_DEPTH)."
                ),
                format!("Nested more than {limit} levels deep."),
            ));
        }
        Ok(())
    }
}

/// One JSON value, built as serde_json's `Value` is, within the limits.
#[derive(Clone, Copy)]
struct Node<'a> {
    context: &'a ParseContext,
    depth: u64,
}

impl<'de> serde::de::DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.context.enter(self.depth)?;
        let child = Node {
            depth: self.depth + 1,
            ..self
        };
        let mut items = Vec::new();
        loop {
            self.context
                .state
                .borrow_mut()
                .path
                .push(items.len().to_string());
            let item = seq.next_element_seed(child)?;
            self.context.state.borrow_mut().path.pop();
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.context.enter(self.depth)?;
        let child = Node {
            depth: self.depth + 1,
            ..self
        };
        let shape = self.context.shape;
        let mut out = Map::new();
        let mut keys = 0u64;
        while let Some(key) = map.next_key::<String>()? {
            keys += 1;
            let total = {
                let mut state = self.context.state.borrow_mut();
                state.total_keys += 1;
                state.total_keys
            };
            if keys > shape.keys_per_object || total > shape.total_keys {
                // Named by the key that crossed the limit.
                self.context.state.borrow_mut().path.push(key.clone());
            }
            if keys > shape.keys_per_object {
                let limit = shape.keys_per_object;
                return Err(self.context.refuse(
                    format!(
                        "An object of the JSON body has more than {limit} keys \
                         (TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT)."
                    ),
                    format!("More than {limit} keys in this object."),
                ));
            }
            if total > shape.total_keys {
                let limit = shape.total_keys;
                return Err(self.context.refuse(
                    format!(
                        "The JSON body has more than {limit} keys in all \
                         (TESTFLINGER_MAX_JSON_KEYS)."
                    ),
                    format!("The body's key number {total} is here: at most {limit} in all."),
                ));
            }
            self.context.state.borrow_mut().path.push(key);
            let value = map.next_value_seed(child);
            let key = {
                let mut state = self.context.state.borrow_mut();
                let key = state.path.pop().unwrap_or_default();
                if key.contains('\0') && state.bad_keys.len() < MAX_REPORTED_KEYS {
                    let mut pointer = json_pointer(state.path.iter().map(String::as_str));
                    pointer.push_str(&json_pointer([key.as_str()]));
                    state.bad_keys.push(pointer);
                }
                key
            };
            out.insert(key, value?);
        }
        Ok(Value::Object(out))
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
        assert_eq!(problems(json!({"t": [{"$x": 1}]})), ["t.0.$x"]);
        // Inside a value, dots and empty keys are data, stored as sent.
        assert!(problems(json!({"t": [{"a.b": 1, "": {"c.": 2}}]})).is_empty());
        assert_eq!(problems(json!({"a.b": 1, "": 2})), ["", "a.b"]);
        assert_eq!(problems(json!({"big": 18446744073709551615u64})), ["big"]);
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(problems(json!({"deep": deep})).len(), 1);
    }

    const SHAPE: JsonShape = JsonShape {
        keys_per_object: 3,
        total_keys: 5,
        depth: 3,
    };

    fn refusal(body: &str) -> (String, Vec<String>) {
        match parse_json_body(body.as_bytes(), &SHAPE) {
            Err(crate::Error::Validation {
                message, fields, ..
            }) => (message, fields.fields().map(str::to_owned).collect()),
            other => panic!("expected a validation error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn bodies_within_the_shape_parse_as_serde_json_does() {
        let body =
            r#"{"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}, "d~/e": 18446744073709551615}"#;
        assert_eq!(
            parse_json_body(body.as_bytes(), &SHAPE).unwrap(),
            serde_json::from_str::<Value>(body).unwrap()
        );
        assert!(matches!(
            parse_json_body(b"{\"a\": ", &SHAPE),
            Err(crate::Error::BadRequest(_))
        ));
        assert!(matches!(
            parse_json_body(b"{} {}", &SHAPE),
            Err(crate::Error::BadRequest(_))
        ));
    }

    #[test]
    fn nul_in_a_key_is_named_by_its_pointer() {
        let (_, fields) = refusal(r#"{"a": [{"b\u0000c": 1}], "d/\u0000": 2}"#);
        assert_eq!(fields, ["/a/0/b\0c", "/d~1\0"]);
        // In a value it is only text.
        assert!(parse_json_body(br#"{"a": "b\u0000c"}"#, &SHAPE).is_ok());
    }

    #[test]
    fn keys_and_depth_are_capped_where_they_cross() {
        let (message, fields) = refusal(r#"{"a": {"b": 1, "c": 2, "d": 3, "e": 4}}"#);
        assert!(
            message.contains("TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT"),
            "{message}"
        );
        assert_eq!(fields, ["/a/e"]);
        let (message, fields) = refusal(r#"{"a": {"b": 1, "c": 2}, "d": {"e": 1, "f": 2}}"#);
        assert!(message.contains("TESTFLINGER_MAX_JSON_KEYS)"), "{message}");
        assert_eq!(fields, ["/d/f"]);
        let (message, fields) = refusal(r#"{"a": [[{"b": 1}]]}"#);
        assert!(message.contains("TESTFLINGER_MAX_JSON_DEPTH"), "{message}");
        assert_eq!(fields, ["/a/0/0"]);
        assert!(parse_json_body(br#"{"a": [[1]]}"#, &SHAPE).is_ok());
    }
}
