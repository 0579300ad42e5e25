//! Conformance fixture resources: two static resources and two templates,
//! plus the unlisted `test://watched-resource` that subscription tests watch.

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

use crate::media::{PNG_1X1_BASE64, PNG_MIME};

pub const STATIC_TEXT_URI: &str = "test://static-text";
pub const STATIC_TEXT: &str = "This is the content of the static text resource.";
pub const STATIC_BINARY_URI: &str = "test://static-binary";
pub const TEMPLATE_URI: &str = "test://template/{id}/data";
/// Read after `{ms}` milliseconds (at most 60 s): a slow provider.
pub const SLOW_URI: &str = "test://slow/{ms}";
/// Readable but not listed: the URI the subscription scenarios subscribe to;
/// `test_trigger_resource_update` announces changes to it.
pub const WATCHED_URI: &str = "test://watched-resource";
/// Text of [`WATCHED_URI`].
pub const WATCHED_TEXT: &str = "This resource is updated by the test_trigger_resource_update tool.";
const SLOW_PREFIX: &str = "test://slow/";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT_URI, "Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY_URI, "Static Binary Resource")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type(PNG_MIME),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE_URI, "Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
        ResourceTemplate::new(SLOW_URI, "Slow Resource")
            .with_description("Read after {ms} milliseconds (at most 60000)")
            .with_mime_type("text/plain"),
    ]
}

/// How long a read of `uri` must wait first (`test://slow/{ms}`).
pub fn delay_of(uri: &str) -> Option<std::time::Duration> {
    let ms: u64 = uri.strip_prefix(SLOW_PREFIX)?.parse().ok()?;
    Some(std::time::Duration::from_millis(ms.min(60_000)))
}

pub fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let contents = match uri {
        STATIC_TEXT_URI => ResourceContents::text(STATIC_TEXT, uri).with_mime_type("text/plain"),
        STATIC_BINARY_URI => ResourceContents::blob(PNG_1X1_BASE64, uri).with_mime_type(PNG_MIME),
        WATCHED_URI => ResourceContents::text(WATCHED_TEXT, uri).with_mime_type("text/plain"),
        _ if delay_of(uri).is_some() => {
            ResourceContents::text("slow", uri).with_mime_type("text/plain")
        }
        _ => {
            let id = template_id(uri).ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("Resource not found: {uri}"),
                    Some(serde_json::json!({ "uri": uri })),
                )
            })?;
            let body = serde_json::json!({
                "id": id,
                "templateTest": true,
                "data": format!("Data for ID: {id}"),
            });
            ResourceContents::text(body.to_string(), uri).with_mime_type("application/json")
        }
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// Extract `{id}` from `test://template/{id}/data`; the id must be a single,
/// non-empty path segment.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(result: &ReadResourceResult) -> Option<&str> {
        match result.contents.first()? {
            ResourceContents::TextResourceContents { text, .. } => Some(text),
            _ => None,
        }
    }

    #[test]
    fn template_ids() {
        assert_eq!(template_id("test://template/42/data"), Some("42"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/a/b/data"), None);
        assert_eq!(template_id("test://template/42"), None);
    }

    #[test]
    fn reads() {
        let text = read(STATIC_TEXT_URI).map(|r| text_of(&r).map(str::to_owned));
        assert_eq!(text, Ok(Some(STATIC_TEXT.to_owned())));

        let json = read("test://template/7/data")
            .ok()
            .and_then(|r| text_of(&r).map(str::to_owned))
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        assert_eq!(
            json,
            Some(serde_json::json!({"id": "7", "templateTest": true, "data": "Data for ID: 7"}))
        );

        assert!(read("test://nope").is_err());
        let watched = read(WATCHED_URI).map(|r| text_of(&r).map(str::to_owned));
        assert_eq!(watched, Ok(Some(WATCHED_TEXT.to_owned())));
        assert!(!list().iter().any(|r| r.uri == WATCHED_URI), "not listed");
    }
}
