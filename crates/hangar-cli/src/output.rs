//! Rendering: aligned tables and key/value listings for people, pretty JSON for scripts.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

/// Awaits `work` with a spinner and `message` on stderr while it runs, for
/// waits that can take seconds (a provider starting, a tool call). Drawn only
/// when stderr is a terminal and the output is for people: piped, or with
/// `--output json`, nothing is written.
pub async fn waiting<F: Future>(message: &str, for_people: bool, work: F) -> F::Output {
    let bar = spinner(message, for_people);
    let out = work.await;
    bar.finish_and_clear();
    out
}

/// A spinner saying `message` on stderr until it is cleared (drawn only on
/// a terminal, and only when `for_people`). Print through its `suspend` so
/// lines do not mix with it.
pub fn spinner(message: &str, for_people: bool) -> indicatif::ProgressBar {
    let bar = if for_people {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Columns separated by two spaces, each as wide as its widest cell; no trailing spaces.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| clean(c)).collect())
        .collect();
    let columns = headers
        .len()
        .max(clean_rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0usize; columns];
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(clean_rows.iter()) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(clean_rows.iter()) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < columns {
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A cell must stay on one line: newlines and tabs become spaces, other controls are dropped.
fn clean(cell: &str) -> String {
    cell.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// A JSON value as a table cell: strings bare, booleans yes/no, absent or null as `-`.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "yes".to_owned(),
        Some(Value::Bool(false)) => "no".to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// The first line of a (tool) description, for a table.
pub fn summary(value: Option<&Value>) -> String {
    match value.and_then(Value::as_str) {
        Some(text) => crate::client::first_line_truncated(text.trim(), 120),
        None => String::new(),
    }
}

/// Rows of `items`, one cell per field (`-` where a field is missing).
pub fn rows(items: &[Value], fields: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| fields.iter().map(|f| cell(item.get(*f))).collect())
        .collect()
}

/// An object as `key  value` lines (aligned); nested values are shown as indented JSON.
pub fn render_kv(value: &Value) -> String {
    let Value::Object(map) = value else {
        return format!("{}\n", pretty(value));
    };
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in map {
        match value {
            Value::Object(inner) if inner.is_empty() => {
                out.push_str(&format!("{key:width$}  {{}}\n"))
            }
            Value::Array(inner) if inner.is_empty() => out.push_str(&format!("{key:width$}  []\n")),
            Value::Object(_) | Value::Array(_) => {
                out.push_str(&format!("{key}:\n"));
                for line in pretty(value).lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
            scalar => out.push_str(&format!("{key:width$}  {}\n", cell(Some(scalar)))),
        }
    }
    out
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Write `text` to stdout.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Write `value` as pretty JSON (plus a newline) to stdout.
pub fn print_json(value: &Value) -> std::io::Result<()> {
    print(&format!("{}\n", pretty(value)))
}

/// Prints `response` for scripts (pretty JSON), or `text(response)` for
/// people when `table` is set.
pub fn show(
    response: &Value,
    table: bool,
    text: impl FnOnce(&Value) -> String,
) -> Result<(), crate::error::CliError> {
    if table {
        print(&text(response))?;
    } else {
        print_json(response)?;
    }
    Ok(())
}

/// The human-readable text of a `tools/call` result's content blocks.
pub fn content_text(result: &Value) -> String {
    let mut out = String::new();
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for block in blocks {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let text = match kind {
            "text" => block
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            "image" | "audio" => {
                format!(
                    "[{kind} {}]",
                    block.get("mimeType").and_then(Value::as_str).unwrap_or("?")
                )
            }
            "resource" => {
                let uri = block
                    .pointer("/resource/uri")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                match block.pointer("/resource/text").and_then(Value::as_str) {
                    Some(text) => text.to_owned(),
                    None => format!("[resource {uri}]"),
                }
            }
            "resource_link" => format!(
                "[resource {}]",
                block.get("uri").and_then(Value::as_str).unwrap_or("?")
            ),
            other => format!("[{}]", if other.is_empty() { "content" } else { other }),
        };
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    if blocks.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        out.push_str(&pretty(structured));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_columns_are_aligned() {
        let table = render_table(
            &["PROVIDER", "STATE", "TOOLS"],
            &[
                vec!["math".into(), "ready".into(), "5".into()],
                vec!["a-much-longer-id".into(), "cold".into(), "-".into()],
            ],
        );
        let expected = "\
PROVIDER          STATE  TOOLS
math              ready  5
a-much-longer-id  cold   -
";
        assert_eq!(table, expected);
    }

    #[test]
    fn table_cells_stay_on_one_line_and_have_no_trailing_space() {
        let table = render_table(
            &["NAME", "DESCRIPTION"],
            &[
                vec!["é".into(), "two\nlines\tx".into()],
                vec!["bb".into(), String::new()],
            ],
        );
        assert_eq!(table, "NAME  DESCRIPTION\né     two lines x\nbb\n");
        assert_eq!(render_table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn cells_from_json() {
        let item =
            json!({"provider": "math", "alive": true, "tools_count": 5, "health_status": null});
        let fields = [
            "provider",
            "alive",
            "tools_count",
            "health_status",
            "missing",
        ];
        assert_eq!(
            rows(&[item], &fields),
            vec![vec!["math", "yes", "5", "-", "-"]]
        );
    }

    #[test]
    fn key_value_listing() {
        let listing = render_kv(
            &json!({"alive": false, "env": {}, "provider": "math", "tools": [{"name": "add"}]}),
        );
        assert_eq!(
            listing,
            "alive     no\nenv       {}\nprovider  math\ntools:\n  [\n    {\n      \"name\": \"add\"\n    }\n  ]\n"
        );
    }

    #[test]
    fn tool_result_text() {
        let result = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "mimeType": "image/png", "data": "..."},
            {"type": "resource", "resource": {"uri": "file:///x", "blob": "..."}},
            {"type": "resource_link", "uri": "file:///y", "name": "y"}
        ]});
        assert_eq!(
            content_text(&result),
            "hello\n[image image/png]\n[resource file:///x]\n[resource file:///y]\n"
        );
        assert_eq!(
            content_text(&json!({"content": [], "structuredContent": {"a": 1}})),
            "{\n  \"a\": 1\n}\n"
        );
    }
}
