//! Best-effort line numbers for validation errors.
//!
//! yaml_serde gives positions only for errors it finds itself. For errors found after
//! parsing, this scans block-style YAML for the key path (indentation based). Flow style,
//! anchors or odd quoting may defeat it; then the deepest key found is reported, or nothing.

/// A non-blank, non-comment line: 1-based number, indentation, and text after it.
#[derive(Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// Line of a dotted config field such as `providers.math.env.FOO`,
/// `providers.math.command[0]` or `groups.pool.members[1].provider`. Provider fields are
/// looked up under both `providers` and `mcp_servers`.
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

/// `members[1]` → (`members`, 1); `None` without a trailing index.
fn split_index(segment: &str) -> Option<(&str, usize)> {
    let (key, rest) = segment.split_once('[')?;
    let index = rest.strip_suffix(']')?.parse().ok()?;
    Some((key, index))
}

/// Finds the key path; returns how many segments matched and the line of the deepest one.
/// When a key repeats at one level, the last occurrence is used (the one a duplicate error
/// is about). A segment `key[n]` continues in the n-th item of a block sequence under `key`
/// when there is one (else stays at `key`).
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
    let mut range = lines;
    let mut found = None;
    for (depth, segment) in path.iter().enumerate() {
        let Some(child_indent) = range.first().map(|l| l.indent) else {
            break;
        };
        let at = |key: &str| {
            range
                .iter()
                .rposition(|l| l.indent == child_indent && key_of(l.text) == Some(key))
        };
        let (pos, index) = match (at(segment), split_index(segment)) {
            (Some(pos), _) => (pos, None),
            (None, Some((key, index))) => match at(key) {
                Some(pos) => (pos, Some(index)),
                None => break,
            },
            (None, None) => break,
        };
        let Some(line) = range.get(pos) else { break };
        found = Some((depth + 1, line.number));
        let after = range.get(pos + 1..).unwrap_or_default();
        let end = after
            .iter()
            .position(|l| l.indent < child_indent || (l.indent == child_indent && !is_item(l)))
            .unwrap_or(after.len());
        let block = after.get(..end).unwrap_or_default();
        let Some(index) = index else {
            range = block
                .iter()
                .take_while(|l| l.indent > child_indent)
                .copied()
                .collect();
            continue;
        };
        match item(block, index) {
            Some((number, item)) => {
                found = Some((depth + 1, number));
                range = item;
            }
            None => range = Vec::new(),
        }
    }
    found
}

/// Whether a line starts a sequence item (`- x` or a lone `-`).
fn is_item(line: &Line<'_>) -> bool {
    line.text == "-" || line.text.starts_with("- ")
}

/// The line number and lines of the `index`-th item of the block sequence at the start of
/// `block`, the item's first line rewritten as if the `- ` were indentation.
fn item<'a>(block: &[Line<'a>], index: usize) -> Option<(usize, Vec<Line<'a>>)> {
    let indent = block.first().filter(|l| is_item(l))?.indent;
    let mut items = block
        .iter()
        .enumerate()
        .filter(|(_, l)| l.indent == indent && is_item(l))
        .map(|(i, _)| i);
    let start = items.nth(index)?;
    let first = block.get(start)?;
    let rest = first.text.get(1..).unwrap_or_default();
    let content = rest.trim_start_matches([' ', '\t']);
    let mut lines = Vec::new();
    if !content.is_empty() {
        lines.push(Line {
            number: first.number,
            indent: indent + 1 + rest.len() - content.len(),
            text: content,
        });
    }
    let after = block.get(start + 1..).unwrap_or_default();
    lines.extend(after.iter().take_while(|l| l.indent > indent).copied());
    Some((first.number, lines))
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

    #[test]
    fn finds_sequence_items() {
        let yaml = "\
groups:
  g:
    members:
      - provider: a
      -
        provider: b
        weight: 0
  h:
    members:
    - provider: c
    - { provider: d }
    strategy: x
  f:
    members: [{ provider: e }]
";
        assert_eq!(field_line(yaml, "groups.g.members[0].provider"), Some(4));
        assert_eq!(field_line(yaml, "groups.g.members[1].provider"), Some(6));
        assert_eq!(field_line(yaml, "groups.g.members[1].weight"), Some(7));
        assert_eq!(field_line(yaml, "groups.g.members[1].priority"), Some(5));
        assert_eq!(field_line(yaml, "groups.g.members[2].provider"), Some(3));
        assert_eq!(field_line(yaml, "groups.h.members[0].provider"), Some(10));
        assert_eq!(field_line(yaml, "groups.h.members[1].provider"), Some(11));
        assert_eq!(field_line(yaml, "groups.h.strategy"), Some(12));
        assert_eq!(field_line(yaml, "groups.f.members[0].provider"), Some(14));
    }
}
