//! What agents advertise: queues with descriptions, and images per queue.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::validation::FieldErrors;
use crate::Result;

/// `POST /v1/agents/queues`: `{queue: description}`.
pub fn validate_queues(body: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    let mut errors = FieldErrors::new();
    let mut out = BTreeMap::new();
    for (queue, description) in body {
        check_name(queue, &mut errors);
        match description.as_str() {
            Some(d) => {
                out.insert(queue.clone(), d.to_owned());
            }
            None => errors.add(queue.clone(), "The description must be a string."),
        }
    }
    errors.into_result()?;
    Ok(out)
}

/// `POST /v1/agents/images`: `{queue: {image: provision string}}`.
pub fn validate_images(
    body: &Map<String, Value>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut errors = FieldErrors::new();
    let mut out = BTreeMap::new();
    for (queue, images) in body {
        check_name(queue, &mut errors);
        let Some(images) = images.as_object() else {
            errors.add(
                queue.clone(),
                "Must be an object of image name: provision data.",
            );
            continue;
        };
        let mut map = BTreeMap::new();
        for (image, provision) in images {
            check_name(image, &mut errors);
            match provision.as_str() {
                Some(p) => {
                    map.insert(image.clone(), p.to_owned());
                }
                None => errors.add(
                    format!("{queue}.{image}"),
                    "The provision data must be a string.",
                ),
            }
        }
        out.insert(queue.clone(), map);
    }
    errors.into_result()?;
    Ok(out)
}

/// Queue and image names become document keys in MongoDB, so upstream
/// forbids `.` and a leading `$`; the same rule holds on every backend.
fn check_name(name: &str, errors: &mut FieldErrors) {
    if !crate::validation::is_storable_key(name) {
        errors.add(
            name.to_owned(),
            "Names must be non-empty and contain no '.' nor a leading '$'.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queues_need_string_descriptions() {
        let ok = validate_queues(json!({"q1": "first"}).as_object().unwrap()).unwrap();
        assert_eq!(ok["q1"], "first");
        assert!(validate_queues(json!({"q1": 1}).as_object().unwrap()).is_err());
        assert!(validate_queues(json!({"a.b": "x"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn images_are_maps_of_strings() {
        let ok = validate_images(
            json!({"q": {"jammy": "url: http://x"}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ok["q"]["jammy"], "url: http://x");
        assert!(validate_images(json!({"q": "x"}).as_object().unwrap()).is_err());
        assert!(validate_images(json!({"q": {"$x": "y"}}).as_object().unwrap()).is_err());
    }
}
