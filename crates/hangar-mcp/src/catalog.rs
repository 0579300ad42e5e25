//! The aggregated view clients see: every provider's tools, resources and
//! prompts under one namespace, with the routes back to their provider.
//!
//! A [`Catalog`] is an immutable snapshot. The runtime builds a new one when a
//! provider's listing changes and swaps it in atomically, so the call path
//! reads it without locks and never re-lists.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hangar_core::naming::{Collision, NamingEntry, NamingMode, ToolIndex, ToolRef};
use hangar_core::spec::ItemNaming;
use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::upstream::ProviderListing;

/// Where a prompt lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRef {
    /// Provider id.
    pub provider: String,
    /// The provider's own prompt name.
    pub prompt: String,
}

/// A resource URI served by more than one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceCollision {
    /// The URI.
    pub uri: String,
    /// Providers that list it; the first one serves reads.
    pub providers: Vec<String>,
}

/// One provider (or group) as the catalog is built from it.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// The provider (or group) id.
    pub id: &'a str,
    /// Its listing (`None`: never listed yet).
    pub listing: Option<&'a ProviderListing>,
    /// How its items are named.
    pub naming: ProviderNaming<'a>,
}

/// A provider's own naming settings (`prefix:`, `tools:`, `prompts:`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderNaming<'a> {
    /// What goes before the separator (default: the id).
    pub prefix: Option<&'a str>,
    /// Renamed and hidden tools.
    pub tools: Option<&'a ItemNaming>,
    /// Renamed and hidden prompts.
    pub prompts: Option<&'a ItemNaming>,
}

/// The aggregated, immutable view of every listed provider.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: Vec<Tool>,
    tool_index: ToolIndex,
    param_header_tools: std::collections::HashSet<String>,
    resources: Vec<Resource>,
    resource_routes: HashMap<String, String>,
    templates: Vec<ResourceTemplate>,
    template_routes: Vec<(UriTemplate, String)>,
    prompts: Vec<Prompt>,
    prompt_routes: HashMap<String, PromptRef>,
    prompt_collisions: Vec<Collision>,
    resource_collisions: Vec<ResourceCollision>,
    unlisted: Vec<String>,
    separator: String,
}

impl Catalog {
    /// Builds the view from each provider's listing (`None`: never listed yet),
    /// every name prefixed with its provider id.
    pub fn build<'a>(
        providers: impl IntoIterator<Item = (&'a str, Option<&'a ProviderListing>)>,
        separator: &str,
    ) -> Self {
        Self::build_named(
            providers.into_iter().map(|(id, listing)| Listed {
                id,
                listing,
                naming: ProviderNaming::default(),
            }),
            NamingMode::Prefixed,
            separator,
        )
    }

    /// Builds the view from each provider's listing, named by `mode` and each
    /// provider's own prefix, renames and hidden items.
    pub fn build_named<'a>(
        providers: impl IntoIterator<Item = Listed<'a>>,
        mode: NamingMode,
        separator: &str,
    ) -> Self {
        let mut by_provider: BTreeMap<&str, (&ProviderListing, ProviderNaming<'a>)> =
            BTreeMap::new();
        let mut unlisted = Vec::new();
        for p in providers {
            match p.listing {
                Some(l) => {
                    by_provider.insert(p.id, (l, p.naming));
                }
                None => unlisted.push(p.id.to_owned()),
            }
        }
        unlisted.sort();

        let entry = |provider: &str,
                     name: &str,
                     naming: &ProviderNaming<'_>,
                     items: Option<&ItemNaming>| {
            NamingEntry {
                tool_ref: ToolRef {
                    provider: provider.to_owned(),
                    tool: name.to_owned(),
                },
                prefix: naming.prefix.unwrap_or(provider).to_owned(),
                name: items.map_or(name, |i| i.renamed(name)).to_owned(),
            }
        };
        let tool_index = ToolIndex::build_named(
            by_provider.iter().flat_map(|(p, (l, naming))| {
                l.tools
                    .iter()
                    .filter(|t| !naming.tools.is_some_and(|i| i.hides(&t.name)))
                    .map(move |t| entry(p, &t.name, naming, naming.tools))
            }),
            mode,
            separator,
        );
        let originals: HashMap<(&str, &str), &Tool> = by_provider
            .iter()
            .flat_map(|(p, (l, _))| l.tools.iter().map(move |t| ((*p, t.name.as_ref()), t)))
            .collect();
        let mut tools = Vec::with_capacity(tool_index.len());
        let mut param_header_tools = std::collections::HashSet::new();
        for (name, r) in tool_index.iter() {
            if let Some(t) = originals.get(&(r.provider.as_str(), r.tool.as_str())) {
                let mut t = (*t).clone();
                t.name = name.to_owned().into();
                if t.input_schema.values().any(annotated) {
                    param_header_tools.insert(name.to_owned());
                }
                tools.push(t);
            }
        }

        let mut resources = Vec::new();
        let mut resource_routes = HashMap::new();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (p, (l, _)) in &by_provider {
            for r in &l.resources {
                let owners = seen.entry(r.uri.clone()).or_default();
                owners.push((*p).to_owned());
                if owners.len() == 1 {
                    resource_routes.insert(r.uri.clone(), (*p).to_owned());
                    resources.push(r.clone());
                }
            }
        }
        let resource_collisions = seen
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(uri, providers)| ResourceCollision { uri, providers })
            .collect();

        let mut templates = Vec::new();
        let mut template_routes = Vec::new();
        for (p, (l, _)) in &by_provider {
            for t in &l.resource_templates {
                template_routes.push((UriTemplate::parse(&t.uri_template), (*p).to_owned()));
                templates.push(t.clone());
            }
        }

        // Prompts are named like tools: disambiguated on a collision, never
        // dropped.
        let prompt_index = ToolIndex::build_named(
            by_provider.iter().flat_map(|(p, (l, naming))| {
                l.prompts
                    .iter()
                    .filter(|pr| !naming.prompts.is_some_and(|i| i.hides(&pr.name)))
                    .map(move |pr| entry(p, &pr.name, naming, naming.prompts))
            }),
            mode,
            separator,
        );
        let originals: HashMap<(&str, &str), &Prompt> = by_provider
            .iter()
            .flat_map(|(p, (l, _))| l.prompts.iter().map(move |pr| ((*p, pr.name.as_str()), pr)))
            .collect();
        let mut prompts = Vec::with_capacity(prompt_index.len());
        let mut prompt_routes = HashMap::with_capacity(prompt_index.len());
        for (name, r) in prompt_index.iter() {
            if let Some(pr) = originals.get(&(r.provider.as_str(), r.tool.as_str())) {
                let mut pr = (*pr).clone();
                pr.name = name.to_owned();
                prompts.push(pr);
                prompt_routes.insert(
                    name.to_owned(),
                    PromptRef {
                        provider: r.provider.clone(),
                        prompt: r.tool.clone(),
                    },
                );
            }
        }
        let prompt_collisions = prompt_index.collisions().to_vec();

        Self {
            tools,
            tool_index,
            param_header_tools,
            resources,
            resource_routes,
            templates,
            template_routes,
            prompts,
            prompt_routes,
            prompt_collisions,
            resource_collisions,
            unlisted,
            separator: separator.to_owned(),
        }
    }

    /// All tools under their exposed names, sorted by name.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool clients see as `name`.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        // `tools` is in name order (the index's).
        self.tools
            .binary_search_by(|t| t.name.as_ref().cmp(name))
            .ok()
            .and_then(|i| self.tools.get(i))
    }

    /// Whether tool `name`'s input schema promotes arguments to `Mcp-Param-*`
    /// headers (`x-mcp-header`, SEP-2243), which a 2026-07-28 call must then
    /// carry and match.
    pub fn has_param_headers(&self, name: &str) -> bool {
        self.param_header_tools.contains(name)
    }

    /// Resolves an exposed tool name.
    pub fn resolve_tool(&self, name: &str) -> Option<&ToolRef> {
        self.tool_index.resolve(name)
    }

    /// Tool names that collided and were disambiguated.
    pub fn tool_collisions(&self) -> &[Collision] {
        self.tool_index.collisions()
    }

    /// Prompt names that collided and were disambiguated (a `ToolRef`'s
    /// `tool` is the provider's prompt name).
    pub fn prompt_collisions(&self) -> &[Collision] {
        &self.prompt_collisions
    }

    /// Resource URIs listed by more than one provider.
    pub fn resource_collisions(&self) -> &[ResourceCollision] {
        &self.resource_collisions
    }

    /// Concrete resources.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Resource templates.
    pub fn resource_templates(&self) -> &[ResourceTemplate] {
        &self.templates
    }

    /// Resource templates with the provider serving each.
    pub fn resource_templates_by_provider(
        &self,
    ) -> impl Iterator<Item = (&ResourceTemplate, &str)> + '_ {
        self.templates
            .iter()
            .zip(self.template_routes.iter().map(|(_, p)| p.as_str()))
    }

    /// The provider serving `uri`: an exact resource first, then templates.
    pub fn resolve_resource(&self, uri: &str) -> Option<&str> {
        self.resource_routes
            .get(uri)
            .map(String::as_str)
            .or_else(|| {
                self.template_routes
                    .iter()
                    .find(|(t, _)| t.matches(uri))
                    .map(|(_, p)| p.as_str())
            })
    }

    /// Prompts under their exposed names.
    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    /// Resolves an exposed prompt name.
    pub fn resolve_prompt(&self, name: &str) -> Option<&PromptRef> {
        self.prompt_routes.get(name)
    }

    /// Providers whose lists are not known yet (never started).
    pub fn unlisted(&self) -> &[String] {
        &self.unlisted
    }

    /// The unlisted provider a prefixed name points at, with the tool part:
    /// `time__now` → (`time`, `now`) while `time` has not listed.
    pub fn unlisted_route<'a>(&self, name: &'a str) -> Option<(&str, &'a str)> {
        self.unlisted.iter().find_map(|id| {
            let tool = name
                .strip_prefix(id.as_str())?
                .strip_prefix(self.separator.as_str())?;
            (!tool.is_empty()).then_some((id.as_str(), tool))
        })
    }
}

/// Shared handle type for snapshots.
pub type CatalogRef = Arc<Catalog>;

/// A minimal RFC 6570 level-1 matcher: literal segments and `{var}` holes.
#[derive(Debug, Clone)]
struct UriTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Literal(String),
    Var,
}

impl UriTemplate {
    fn parse(t: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_owned()));
            }
            match rest[open..].find('}') {
                Some(close) => {
                    parts.push(TemplatePart::Var);
                    rest = &rest[open + close + 1..];
                }
                None => {
                    parts.push(TemplatePart::Literal(rest[open..].to_owned()));
                    rest = "";
                }
            }
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        Self { parts }
    }

    fn matches(&self, uri: &str) -> bool {
        fn go(parts: &[TemplatePart], s: &str) -> bool {
            match parts.split_first() {
                None => s.is_empty(),
                Some((TemplatePart::Literal(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|s| go(rest, s))
                }
                Some((TemplatePart::Var, rest)) => {
                    // A variable takes at least one character and no '/'.
                    let limit = s.find('/').unwrap_or(s.len());
                    (1..=limit).any(|n| s.is_char_boundary(n) && go(rest, &s[n..]))
                }
            }
        }
        go(&self.parts, uri)
    }
}

/// Whether `schema` holds an `x-mcp-header` annotation anywhere.
fn annotated(schema: &serde_json::Value) -> bool {
    match schema {
        serde_json::Value::Object(map) => {
            map.contains_key("x-mcp-header") || map.values().any(annotated)
        }
        serde_json::Value::Array(items) => items.iter().any(annotated),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(prompts: &[&str]) -> ProviderListing {
        ProviderListing {
            prompts: prompts
                .iter()
                .map(|n| Prompt::new(*n, None::<String>, None))
                .collect(),
            ..ProviderListing::default()
        }
    }

    #[test]
    fn colliding_prompt_names_are_disambiguated_not_dropped() {
        // `a` + `b__c` and `a__b` + `c` both read `a__b__c`.
        let (a, ab) = (listing(&["b__c", "solo"]), listing(&["c"]));
        let catalog = Catalog::build([("a", Some(&a)), ("a__b", Some(&ab))], "__");
        assert_eq!(catalog.prompts().len(), 3);
        let names: Vec<&str> = catalog.prompts().iter().map(|p| p.name.as_str()).collect();
        let routes: Vec<(&str, &str)> = names
            .iter()
            .map(|n| {
                let r = catalog.resolve_prompt(n).unwrap();
                (r.provider.as_str(), r.prompt.as_str())
            })
            .collect();
        for want in [("a", "b__c"), ("a__b", "c"), ("a", "solo")] {
            assert!(routes.contains(&want), "{want:?} in {routes:?}");
        }
        assert_eq!(catalog.prompt_collisions().len(), 1);
        assert_eq!(catalog.prompt_collisions()[0].exposed, "a__b__c");
        assert!(names.contains(&"a__solo"));
    }

    #[test]
    fn template_matching() {
        let t = UriTemplate::parse("test://template/{id}/data");
        assert!(t.matches("test://template/42/data"));
        assert!(!t.matches("test://template//data"));
        assert!(!t.matches("test://template/4/2/data"));
        assert!(!t.matches("test://other/42/data"));
        let t = UriTemplate::parse("file:///{path}");
        assert!(t.matches("file:///x"));
        assert!(!t.matches("file:///"));
    }
}
