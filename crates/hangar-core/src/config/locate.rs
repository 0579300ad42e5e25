//! Best-effort line numbers for validation errors.
//!
//! yaml_serde gives positions only for errors it finds itself. For errors found after
//! parsing, this scans block-style YAML for the key path (indentation based). Flow style,
//! anchors or odd quoting may defeat it; then the deepest key found is reported, or nothing.

/// A non-blank, non-comment line: 1-based number, indentation, and text after it.
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// Line of a dotted config field such as `providers.math.env.FOO` or
/// `providers.math.command[0]`. Provider fields are looked up under both `providers` and
/// `mcp_servers`.
pub(super) fn field_line(text: &str, field: &str) -> Option<usize> {
    let mut parts = field.splitn(3, '.');
    let section = parts.next()?;
    let id = parts.next();
    let rest = parts.next();
    let mut path: Vec<&str> = vec![section];
    path.extend(id);
    if let Some(rest) = rest {
        // `env.A.B` names the variable `A.B`: split the first dot only.
        match rest.split_once('.') {
            Some((head, tail)) => path.extend([head, tail]),
            None => path.push(rest),
        }
    }
    let path: Vec<&str> = path.into_iter().map(strip_index).collect();
    if section != "providers" {
        return key_line(text, &path).map(|(_, line)| line);
    }
    let mut alternative = path.clone();
    if let Some(first) = alternative.first_mut() {
        *first = "mcp_servers";
    }
    match (key_line(text, &path), key_line(text, &alternative)) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b.1 } else { a.1 }),
        (a, b) => a.or(b).map(|(_, line)| line),
    }
}

/// `command[0]` → `command`.
fn strip_index(segment: &str) -> &str {
    match segment.find('[') {
        Some(i) if segment.ends_with(']') => segment.get(..i).unwrap_or(segment),
        _ => segment,
    }
}

/// Finds the key path; returns how many segments matched and the line of the deepest one.
/// When a key repeats at one level, the last occurrence is used (the one a duplicate error
/// is about).
pub(super) fn key_line(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let lines: Vec<Line<'_>> = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let trimmed = raw.trim_start_matches([' ', '\t']);
            let skip = trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---";
            (!skip).then(|| Line {
                number: i + 1,
                indent: raw.len() - trimmed.len(),
                text: trimmed,
            })
        })
        .collect();
    let mut range = lines.as_slice();
    let mut found = None;
    for (depth, segment) in path.iter().enumerate() {
        let Some(child_indent) = range.first().map(|l| l.indent) else {
            break;
        };
        let Some(pos) = range
            .iter()
            .rposition(|l| l.indent == child_indent && key_of(l.text) == Some(segment))
        else {
            break;
        };
        let Some(line) = range.get(pos) else { break };
        found = Some((depth + 1, line.number));
        let after = range.get(pos + 1..).unwrap_or_default();
        let end = after
            .iter()
            .position(|l| l.indent <= child_indent)
            .unwrap_or(after.len());
        range = after.get(..end).unwrap_or_default();
    }
    found
}

/// The key of a `key: value` or `key:` line, unquoted.
fn key_of(text: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = text.strip_prefix(quote) {
            let (key, after) = rest.split_once(quote)?;
            return after.trim_start().starts_with(':').then_some(key);
        }
    }
    let end = text
        .find(": ")
        .or_else(|| text.find(":\t"))
        .or_else(|| text.strip_suffix(':').map(str::len))?;
    text.get(..end).map(str::trim_end)
}

#[cfg(test)]
mod tests {
    use super::{field_line, key_line};

    const YAML: &str = "\
# comment
providers:
  math:
    command: [python, x]
    env:
      FOO: \"1\"
      'A.B': x
mcp_servers:
  other:
    mode: remote
";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(key_line(YAML, &["providers"]), Some((1, 2)));
        assert_eq!(field_line(YAML, "providers.math.command[1]"), Some(4));
        assert_eq!(field_line(YAML, "providers.math.env.FOO"), Some(6));
        assert_eq!(field_line(YAML, "providers.math.env.A.B"), Some(7));
        assert_eq!(field_line(YAML, "providers.other.mode"), Some(10));
        assert_eq!(field_line(YAML, "providers.math.endpoint"), Some(3));
        assert_eq!(field_line(YAML, "providers.nope"), Some(2));
        assert_eq!(field_line(YAML, "server.tool_separator"), None);
    }
}
