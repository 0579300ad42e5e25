//! Conformance fixture prompts, and argument completion (`completion/complete`).

use rmcp::ErrorData;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock, GetPromptResult,
    JsonObject, Prompt, PromptArgument, PromptMessage, Reference, ResourceContents, Role,
};

use crate::media::{PNG_1X1_BASE64, PNG_MIME};

pub const SIMPLE: &str = "test_simple_prompt";
pub const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
/// An image message followed by a text message.
pub const WITH_IMAGE: &str = "test_prompt_with_image";
/// An embedded resource (URI from `resourceUri`) followed by a text message.
pub const WITH_EMBEDDED_RESOURCE: &str = "test_prompt_with_embedded_resource";
/// Asks the client for context first (MRTR, SEP-2322); see `conformance.rs`.
pub const INPUT_REQUIRED: &str = "test_input_required_result_prompt";
/// Text of the resource embedded by [`WITH_EMBEDDED_RESOURCE`].
pub const EMBEDDED_RESOURCE_TEXT: &str = "Embedded resource content for testing.";

/// Completion candidates of `test_prompt_with_arguments`' arguments.
const ARGUMENT_VALUES: &[&str] = &["alpha", "bravo", "charlie", "test", "testing", "tested"];
/// Completion candidates of `test_prompt_with_embedded_resource`'s `resourceUri`.
const RESOURCE_URI_VALUES: &[&str] = &[
    crate::resources::STATIC_TEXT_URI,
    crate::resources::STATIC_BINARY_URI,
    crate::resources::WATCHED_URI,
];
/// Completion candidates of `{id}` in `test://template/{id}/data`.
const TEMPLATE_ID_VALUES: &[&str] = &["1", "2", "3", "42"];
/// Completion candidates of `{ms}` in `test://slow/{ms}`.
const SLOW_MS_VALUES: &[&str] = &["100", "1000", "5000"];

pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(SIMPLE, Some("A simple prompt without arguments"), None),
        Prompt::new(
            WITH_ARGUMENTS,
            Some("A prompt with required arguments"),
            Some(vec![
                PromptArgument::new("arg1")
                    .with_description("First test argument")
                    .with_required(true),
                PromptArgument::new("arg2")
                    .with_description("Second test argument")
                    .with_required(true),
            ]),
        ),
        Prompt::new(WITH_IMAGE, Some("A prompt with image content"), None),
        Prompt::new(
            WITH_EMBEDDED_RESOURCE,
            Some("A prompt with an embedded resource"),
            Some(vec![
                PromptArgument::new("resourceUri")
                    .with_description("URI of the resource to embed")
                    .with_required(true),
            ]),
        ),
        Prompt::new(
            INPUT_REQUIRED,
            Some("A prompt that first asks the client for context (elicitation)"),
            None,
        ),
    ]
}

pub fn get(name: &str, arguments: Option<&JsonObject>) -> Result<GetPromptResult, ErrorData> {
    let text = match name {
        WITH_IMAGE => {
            return Ok(GetPromptResult::new(vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_1X1_BASE64, PNG_MIME)),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ]));
        }
        WITH_EMBEDDED_RESOURCE => {
            let uri = required_argument(arguments, "resourceUri")?;
            let resource =
                ResourceContents::text(EMBEDDED_RESOURCE_TEXT, uri).with_mime_type("text/plain");
            return Ok(GetPromptResult::new(vec![
                PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ]));
        }
        SIMPLE => "This is a simple prompt for testing.".to_owned(),
        WITH_ARGUMENTS => {
            let arg1 = required_argument(arguments, "arg1")?;
            let arg2 = required_argument(arguments, "arg2")?;
            format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("prompt not found: {other}"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        text,
    )]))
}

/// Answer `completion/complete` for the fixture's prompt arguments and
/// resource-template variables: the known candidates starting with the typed
/// value (case-insensitively). Unknown prompts and templates are `-32602`.
pub fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let argument = request.argument.name.as_str();
    let candidates: &[&str] = match &request.r#ref {
        Reference::Prompt(prompt) => match (prompt.name.as_str(), argument) {
            (WITH_ARGUMENTS, "arg1" | "arg2") => ARGUMENT_VALUES,
            (WITH_EMBEDDED_RESOURCE, "resourceUri") => RESOURCE_URI_VALUES,
            (SIMPLE | WITH_ARGUMENTS | WITH_IMAGE | WITH_EMBEDDED_RESOURCE | INPUT_REQUIRED, _) => {
                &[]
            }
            (other, _) => {
                return Err(ErrorData::invalid_params(
                    format!("prompt not found: {other}"),
                    None,
                ));
            }
        },
        Reference::Resource(template) => match (template.uri.as_str(), argument) {
            (crate::resources::TEMPLATE_URI, "id") => TEMPLATE_ID_VALUES,
            (crate::resources::SLOW_URI, "ms") => SLOW_MS_VALUES,
            (crate::resources::TEMPLATE_URI | crate::resources::SLOW_URI, _) => &[],
            (other, _) => {
                return Err(ErrorData::invalid_params(
                    format!("resource template not found: {other}"),
                    None,
                ));
            }
        },
        _ => {
            return Err(ErrorData::invalid_params(
                "unsupported completion reference",
                None,
            ));
        }
    };
    let typed = request.argument.value.to_lowercase();
    let values: Vec<String> = candidates
        .iter()
        .filter(|value| value.to_lowercase().starts_with(&typed))
        .map(|value| (*value).to_owned())
        .collect();
    CompletionInfo::with_all_values(values)
        .map(CompleteResult::new)
        .map_err(|error| ErrorData::internal_error(error, None))
}

/// Prompt arguments are strings on the wire; accept other scalars leniently.
fn required_argument(arguments: Option<&JsonObject>, key: &str) -> Result<String, ErrorData> {
    match arguments.and_then(|arguments| arguments.get(key)) {
        Some(serde_json::Value::String(value)) => Ok(value.clone()),
        Some(value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(value.to_string())
        }
        Some(_) => Err(ErrorData::invalid_params(
            format!("argument {key} must be a string"),
            None,
        )),
        None => Err(ErrorData::invalid_params(
            format!("missing required argument: {key}"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_text(result: &GetPromptResult) -> Option<&str> {
        result
            .messages
            .first()
            .and_then(|message| message.content.as_text())
            .map(|text| text.text.as_str())
    }

    #[test]
    fn prompts_render() {
        let simple = get(SIMPLE, None);
        assert_eq!(
            simple.as_ref().ok().and_then(first_text),
            Some("This is a simple prompt for testing.")
        );

        let mut arguments = JsonObject::new();
        arguments.insert("arg1".into(), "a".into());
        arguments.insert("arg2".into(), "b".into());
        let with_args = get(WITH_ARGUMENTS, Some(&arguments));
        assert_eq!(
            with_args.as_ref().ok().and_then(first_text),
            Some("Prompt with arguments: arg1='a', arg2='b'")
        );

        arguments.remove("arg2");
        assert!(get(WITH_ARGUMENTS, Some(&arguments)).is_err());
        assert!(get("nope", None).is_err());
    }

    #[test]
    fn media_prompts_render() {
        let image = get(WITH_IMAGE, None).unwrap();
        let json = serde_json::to_value(&image).unwrap();
        assert_eq!(json["messages"][0]["content"]["type"], "image");
        assert_eq!(json["messages"][0]["content"]["mimeType"], PNG_MIME);
        assert_eq!(
            json["messages"][1]["content"]["text"],
            "Please analyze the image above."
        );

        let mut arguments = JsonObject::new();
        arguments.insert("resourceUri".into(), "test://example-resource".into());
        let embedded = get(WITH_EMBEDDED_RESOURCE, Some(&arguments)).unwrap();
        let json = serde_json::to_value(&embedded).unwrap();
        let resource = &json["messages"][0]["content"];
        assert_eq!(resource["type"], "resource");
        assert_eq!(resource["resource"]["uri"], "test://example-resource");
        assert_eq!(resource["resource"]["mimeType"], "text/plain");
        assert_eq!(resource["resource"]["text"], EMBEDDED_RESOURCE_TEXT);
        assert!(get(WITH_EMBEDDED_RESOURCE, None).is_err());
    }

    #[test]
    fn completes_by_prefix() {
        use rmcp::model::ArgumentInfo;
        let values = |reference: Reference, name: &str, value: &str| {
            complete(&CompleteRequestParams::new(
                reference,
                ArgumentInfo::new(name, value),
            ))
            .map(|result| result.completion.values)
        };
        assert_eq!(
            values(Reference::for_prompt(WITH_ARGUMENTS), "arg1", "te").unwrap(),
            vec!["test", "testing", "tested"]
        );
        assert_eq!(
            values(Reference::for_prompt(WITH_ARGUMENTS), "arg2", "")
                .unwrap()
                .len(),
            ARGUMENT_VALUES.len()
        );
        assert!(
            values(Reference::for_prompt(SIMPLE), "x", "")
                .unwrap()
                .is_empty()
        );
        assert!(values(Reference::for_prompt("nope"), "x", "").is_err());
        assert_eq!(
            values(
                Reference::for_resource(crate::resources::TEMPLATE_URI),
                "id",
                "4"
            )
            .unwrap(),
            vec!["42"]
        );
        assert!(values(Reference::for_resource("test://nope/{x}"), "x", "").is_err());
    }
}
