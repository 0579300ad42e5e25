//! Conformance fixture prompts.

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};

pub const SIMPLE: &str = "test_simple_prompt";
pub const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";

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
    ]
}

pub fn get(name: &str, arguments: Option<&JsonObject>) -> Result<GetPromptResult, ErrorData> {
    let text = match name {
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
}
