//! Tool names seen by clients.
//!
//! A provider's tool is exposed as `<provider><separator><tool>`, sanitized to
//! `^[a-zA-Z0-9_-]{1,64}$` so every LLM function-calling API accepts it. Names longer than 64
//! characters are shortened deterministically; names that still collide are disambiguated and
//! reported, never dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// The default separator between provider id and tool name.
pub const DEFAULT_SEPARATOR: &str = "__";

/// Longest exposed tool name.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// Hex characters of the hash suffix used when shortening or disambiguating.
const HASH_LEN: usize = 8;

/// Characters kept before `-<hash>` so that the result is exactly 64 long at most.
const PREFIX_LEN: usize = MAX_TOOL_NAME_LEN - 1 - HASH_LEN;

/// Whether `c` may appear in an exposed name.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The name clients see for `tool` of `provider`: `<provider><separator><tool>` with every
/// character outside `[a-zA-Z0-9_-]` replaced by `_` (an empty tool becomes `_`). Longer than
/// 64 characters, it keeps a 55-character prefix and appends `-` and 8 hex characters of the
/// SHA-256 of `<provider>\0<tool>` (unsanitized).
pub fn exposed_name(provider: &str, tool: &str, separator: &str) -> String {
    let full = sanitized(provider, tool, separator);
    if full.len() <= MAX_TOOL_NAME_LEN {
        full
    } else {
        with_suffix(&full, &short_hash(provider, tool, 0))
    }
}

/// `<provider><separator><tool>` with invalid characters replaced; never empty.
fn sanitized(provider: &str, tool: &str, separator: &str) -> String {
    let tool = if tool.is_empty() { "_" } else { tool };
    [provider, separator, tool]
        .iter()
        .flat_map(|part| part.chars())
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect()
}

/// The first 55 characters of `name` (ASCII after sanitizing), `-`, then `hash`.
fn with_suffix(name: &str, hash: &str) -> String {
    let prefix = name.get(..PREFIX_LEN).unwrap_or(name);
    format!("{prefix}-{hash}")
}

/// 8 hex chars of SHA-256 of `<provider>\0<tool>`, or of `<provider>\0<tool>\0<salt>` when
/// `salt` is not zero (only needed after a hash collision).
fn short_hash(provider: &str, tool: &str, salt: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0u8]);
    hasher.update(tool.as_bytes());
    if salt != 0 {
        hasher.update([0u8]);
        hasher.update(salt.to_string().as_bytes());
    }
    let digest = hasher.finalize();
    hex::encode(digest.get(..HASH_LEN / 2).unwrap_or_default())
}

/// One tool of one provider, as the provider names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ToolRef {
    /// Provider (or group) id.
    pub provider: String,
    /// Tool name as the provider lists it.
    pub tool: String,
}

/// Several tools whose plain exposed name was the same; each got a disambiguated name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collision {
    /// The name they all would have had.
    pub exposed: String,
    /// The colliding tools, sorted.
    pub tools: Vec<ToolRef>,
}

/// The mapping from exposed names to provider tools, injective and deterministic: the same
/// set of tools gives the same names whatever the input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolIndex {
    by_name: BTreeMap<String, ToolRef>,
    by_tool: BTreeMap<String, BTreeMap<String, String>>,
    collisions: Vec<Collision>,
}

/// How exposed names are formed (`server.tool_naming`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamingMode {
    /// `<prefix><separator><name>` for every tool (the default).
    #[default]
    Prefixed,
    /// `<name>` while no other provider has a tool of that name; prefixed (as in
    /// `Prefixed`) when several do.
    Conditional,
    /// `<name>` always; names several providers share are disambiguated with a
    /// hash suffix (and reported).
    Bare,
}

impl NamingMode {
    /// The name in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefixed => "prefixed",
            Self::Conditional => "conditional",
            Self::Bare => "bare",
        }
    }
}

/// One tool (or prompt) to name: its route, and what its exposed name is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamingEntry {
    /// The provider (or group) and the tool as the provider lists it.
    pub tool_ref: ToolRef,
    /// What goes before the separator: the provider's `prefix:` or its id.
    pub prefix: String,
    /// The tool's own part: its `rename:` or the provider's name.
    pub name: String,
}

impl NamingEntry {
    /// An entry with the provider id as prefix and the provider's own name.
    pub fn plain(provider: impl Into<String>, tool: impl Into<String>) -> Self {
        let (provider, tool) = (provider.into(), tool.into());
        Self {
            prefix: provider.clone(),
            name: tool.clone(),
            tool_ref: ToolRef { provider, tool },
        }
    }

    /// The `Prefixed` form of this entry's name.
    fn prefixed(&self, separator: &str) -> String {
        let full = sanitized(&self.prefix, &self.name, separator);
        self.fitted(full)
    }

    /// The bare form of this entry's name.
    fn bare(&self) -> String {
        let name = if self.name.is_empty() {
            "_"
        } else {
            &self.name
        };
        let full: String = name
            .chars()
            .map(|c| if is_name_char(c) { c } else { '_' })
            .collect();
        self.fitted(full)
    }

    /// `full` when it is short enough, else shortened with the hash of the route.
    fn fitted(&self, full: String) -> String {
        if full.len() <= MAX_TOOL_NAME_LEN {
            full
        } else {
            with_suffix(
                &full,
                &short_hash(&self.tool_ref.provider, &self.tool_ref.tool, 0),
            )
        }
    }
}

impl ToolIndex {
    /// Names every distinct `(provider, tool)` pair (duplicates are merged). Pairs whose
    /// [`exposed_name`] collides all get `<prefix>-<8 hex of their own name>` instead, and the
    /// collision is recorded.
    pub fn build(
        entries: impl IntoIterator<Item = (String, String)>,
        separator: &str,
    ) -> ToolIndex {
        Self::build_named(
            entries
                .into_iter()
                .map(|(provider, tool)| NamingEntry::plain(provider, tool)),
            NamingMode::Prefixed,
            separator,
        )
    }

    /// Names every distinct route of `entries` by `mode` (duplicate routes are merged;
    /// the first entry of a route wins). Names several entries want are recorded as
    /// collisions: in `Conditional` mode such entries take their prefixed name, and
    /// entries whose name is still shared get `<name>-<8 hex>`; no entry is ever dropped.
    pub fn build_named(
        entries: impl IntoIterator<Item = NamingEntry>,
        mode: NamingMode,
        separator: &str,
    ) -> ToolIndex {
        let mut seen: BTreeSet<ToolRef> = BTreeSet::new();
        let entries: Vec<NamingEntry> = entries
            .into_iter()
            .filter(|e| seen.insert(e.tool_ref.clone()))
            .collect();
        let mut wanted: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut collisions = Vec::new();
        match mode {
            NamingMode::Prefixed | NamingMode::Bare => {
                for (i, e) in entries.iter().enumerate() {
                    let name = if mode == NamingMode::Bare {
                        e.bare()
                    } else {
                        e.prefixed(separator)
                    };
                    wanted.entry(name).or_default().push(i);
                }
            }
            NamingMode::Conditional => {
                let mut bare: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for (i, e) in entries.iter().enumerate() {
                    bare.entry(e.bare()).or_default().push(i);
                }
                for (name, holders) in bare {
                    if let [only] = holders.as_slice() {
                        wanted.entry(name).or_default().push(*only);
                        continue;
                    }
                    collisions.push(collision(&name, &holders, &entries));
                    for i in holders {
                        if let Some(e) = entries.get(i) {
                            wanted.entry(e.prefixed(separator)).or_default().push(i);
                        }
                    }
                }
            }
        }

        let mut index = ToolIndex::default();
        let mut contested = Vec::new();
        // Uncontested names first, so a disambiguated name never takes one of them.
        for (name, holders) in wanted {
            match holders.as_slice() {
                [only] => {
                    if let Some(e) = entries.get(*only) {
                        index.insert(name, e.tool_ref.clone());
                    }
                }
                _ => contested.push((name, holders)),
            }
        }
        for (name, holders) in &contested {
            collisions.push(collision(name, holders, &entries));
            let mut refs: Vec<&ToolRef> = holders
                .iter()
                .filter_map(|&i| entries.get(i).map(|e| &e.tool_ref))
                .collect();
            refs.sort();
            for tool_ref in refs {
                let mut salt = 0u32;
                let unique = loop {
                    let candidate =
                        with_suffix(name, &short_hash(&tool_ref.provider, &tool_ref.tool, salt));
                    if !index.by_name.contains_key(&candidate) || salt == u32::MAX {
                        break candidate;
                    }
                    salt += 1;
                };
                index.insert(unique, tool_ref.clone());
            }
        }
        collisions.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        index.collisions = collisions;
        index
    }

    fn insert(&mut self, name: String, tool_ref: ToolRef) {
        self.by_tool
            .entry(tool_ref.provider.clone())
            .or_default()
            .insert(tool_ref.tool.clone(), name.clone());
        self.by_name.insert(name, tool_ref);
    }

    /// The tool behind an exposed name.
    pub fn resolve(&self, exposed: &str) -> Option<&ToolRef> {
        self.by_name.get(exposed)
    }

    /// The exposed name of `tool` of `provider`.
    pub fn exposed_name_of(&self, provider: &str, tool: &str) -> Option<&str> {
        self.by_tool
            .get(provider)
            .and_then(|tools| tools.get(tool))
            .map(String::as_str)
    }

    /// All `(exposed name, tool)` pairs, sorted by exposed name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ToolRef)> {
        self.by_name.iter().map(|(name, r)| (name.as_str(), r))
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Names that several tools wanted, sorted by name.
    pub fn collisions(&self) -> &[Collision] {
        &self.collisions
    }
}

/// The collision record of the entries at `holders`, which all wanted `name`.
fn collision(name: &str, holders: &[usize], entries: &[NamingEntry]) -> Collision {
    let mut tools: Vec<ToolRef> = holders
        .iter()
        .filter_map(|&i| entries.get(i).map(|e| e.tool_ref.clone()))
        .collect();
    tools.sort();
    Collision {
        exposed: name.to_owned(),
        tools,
    }
}
