//! The crate's layering, read from its source with a real parser (`syn`). The module tree is built
//! from the files, following `mod` declarations from `src/lib.rs` (`a.rs`, `a/mod.rs`, `mod x { }`
//! blocks, `#[path]`); each module's crate paths (`use crate::`/`super::`/`self::`/relative `use`,
//! paths in code and types, `$crate::`/`crate::` paths in macro bodies and invocations, invocations
//! of the crate's own `macro_rules!`) are resolved to the module that *defines* the item, through
//! `use` re-exports. The rule, at every level: the children of a module (the crate root, every
//! directory or inline module) name each other without a cycle, counting what anything in a child's
//! subtree names in another's. The parent's own file is not a node: declaring and re-exporting its
//! children is structure. Data flows one way (configs → compiler → model/flavor table → generation →
//! jobs → providers → storage, with the HTTP edge on top), so an import against it is a cycle here.
//!
//! Left out, on purpose or because a parser cannot see them: `#[cfg(test)]` items (tests may import
//! anything); `src/main.rs` (a crate of its own, over the library's public API); code that `include!`
//! brings in (the generated flavor table names only what its module `use`s); what derive and
//! attribute macros expand to; paths inside string literals (`#[serde(default = "…")]`); and
//! single-segment names in macro arguments (their `use` already counts).
//!
//! `cargo test --test compiler layering -- --nocapture` prints the edges at every level, and the
//! cycles that would appear if each parent's own file were a node too (information, not a failure).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The modules allowed to import `crate::compiler`: the CLI's `--configs`/`check`/`schema`
/// commands, the JSON Schemas they write, `serve --configs` (`live_configs`), and restoring a
/// project's pinned flavor that changed since (`pinned_flavor`). build.rs includes
/// the compiler by path and is not under `src/`.
const COMPILER_USERS: [&str; 4] = ["cli", "json_schema", "live_configs", "pinned_flavor"];

/// The module the crate root is, in `Crate::modules`.
const ROOT: usize = 0;

/// One module of the crate, with what its source declares and names.
#[derive(Default)]
struct Module {
    /// `["cli", "serve"]` for `crate::cli::serve`; empty for the crate root.
    path: Vec<String>,
    /// The file its items are written in (the enclosing file, for a `mod x { }` block).
    file: PathBuf,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    /// Names of the items defined here (not brought in by `use`).
    items: BTreeSet<String>,
    /// `use` declarations (function-local ones too): the name they bring in → the path as written.
    uses: BTreeMap<String, Vec<String>>,
    /// `use path::*` paths, as written.
    globs: Vec<Vec<String>>,
    /// The `macro_rules!` defined here.
    macros: BTreeSet<String>,
    /// Whether its `mod` item is `#[macro_use]`, so its macros are in scope in the parent.
    macro_use: bool,
    /// Every path of two or more segments this module names, as written (`use` trees flattened).
    names: Vec<Vec<String>>,
    /// Macros invoked by a bare name (`outln!`), looked up among the crate's `macro_rules!`.
    invoked: BTreeSet<String>,
}

/// What a path resolved to.
struct Resolved {
    /// The module that defines the item (or that the path ends at).
    module: usize,
    /// The segments after that module's path (the item, then any associated name).
    tail: Vec<String>,
}

/// An import of one module by another: one thing `from` names that `to` defines.
struct Edge {
    from: usize,
    to: usize,
    /// Where and what, e.g. `src/cli/serve.rs: crate::cli::lifecycle::open_jobs`.
    evidence: String,
}

/// The crate's module tree, parsed.
struct Crate {
    /// The directory `src/` is in; file names are shown relative to it.
    base: PathBuf,
    modules: Vec<Module>,
}

impl Crate {
    /// Parses `src/lib.rs` and every module file it declares, recursively.
    fn load(src: &Path) -> Crate {
        let base = src.parent().expect("src has a parent").to_path_buf();
        let mut krate = Crate { base, modules: Vec::new() };
        krate.load_file(Vec::new(), &src.join("lib.rs"), src, None, false);
        krate
    }

    fn add_module(&mut self, path: Vec<String>, file: &Path, parent: Option<usize>, macro_use: bool) -> usize {
        let id = self.modules.len();
        self.modules.push(Module { path, file: file.to_path_buf(), parent, macro_use, ..Module::default() });
        if let Some(parent) = parent {
            let name = self.modules[id].path.last().expect("a child has a name").clone();
            self.modules[parent].children.insert(name, id);
        }
        id
    }

    /// `dir` is where the module's `mod x;` children live (`a/` for `a.rs` and `a/mod.rs`).
    fn load_file(&mut self, path: Vec<String>, file: &Path, dir: &Path, parent: Option<usize>, macro_use: bool) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", file.display()));
        let id = self.add_module(path, file, parent, macro_use);
        let file_dir = file.parent().expect("a file has a directory").to_path_buf();
        self.load_items(id, &ast.items, file, dir, &file_dir);
    }

    /// `path_base` is what a `#[path]` on a `mod x;` here is relative to.
    fn load_items(&mut self, id: usize, items: &[syn::Item], file: &Path, dir: &Path, path_base: &Path) {
        for item in items {
            let syn::Item::Mod(declared) = item else {
                if !test_only(item_attrs(item)) {
                    if let Some(name) = item_name(item) {
                        self.modules[id].items.insert(name);
                    }
                    Collect { module: &mut self.modules[id] }.visit_item(item);
                }
                continue;
            };
            if test_only(&declared.attrs) {
                continue;
            }
            let name = declared.ident.to_string();
            let mut path = self.modules[id].path.clone();
            path.push(name.clone());
            let macro_use = declared.attrs.iter().any(|a| a.path().is_ident("macro_use"));
            let path_attr = declared.attrs.iter().find_map(|a| match &a.meta {
                syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            });
            match (&declared.content, path_attr) {
                (Some((_, inner)), _) => {
                    let child = self.add_module(path, file, Some(id), macro_use);
                    let child_dir = dir.join(&name);
                    self.load_items(child, inner, file, &child_dir, &child_dir);
                }
                // A file loaded through `#[path]` keeps its children next to it, as a `mod.rs` does.
                (None, Some(relative)) => {
                    let child_file = path_base.join(relative);
                    let child_dir = child_file.parent().expect("a file has a directory").to_path_buf();
                    self.load_file(path, &child_file, &child_dir, Some(id), macro_use);
                }
                (None, None) => {
                    let flat = dir.join(format!("{name}.rs"));
                    let child_file = if flat.exists() { flat } else { dir.join(&name).join("mod.rs") };
                    self.load_file(path, &child_file, &dir.join(&name), Some(id), macro_use);
                }
            }
        }
    }

    fn name(&self, module: usize) -> String {
        std::iter::once("crate")
            .chain(self.modules[module].path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("::")
    }

    fn file(&self, module: usize) -> String {
        let file = &self.modules[module].file;
        file.strip_prefix(&self.base).unwrap_or(file).display().to_string()
    }

    /// The module that defines what `path`, written in module `from`, names; `None` for another
    /// crate's item (or the prelude's).
    fn resolve(&self, from: usize, path: &[String], depth: u32) -> Option<Resolved> {
        // Re-exports that lead in a circle (which rustc would reject) end here.
        if depth > 32 {
            return None;
        }
        let (start, rest) = match path.first()?.as_str() {
            "crate" | "$crate" => (ROOT, &path[1..]),
            "self" => (from, &path[1..]),
            "super" => {
                let supers = path.iter().take_while(|s| *s == "super").count();
                let mut module = from;
                for _ in 0..supers {
                    module = self.modules[module].parent?;
                }
                (module, &path[supers..])
            }
            first => {
                if !self.in_scope(from, first, depth) {
                    return None;
                }
                (from, path)
            }
        };
        self.walk(start, rest, depth)
    }

    /// Whether `name` means something of this crate in `module` (else it is another crate's).
    fn in_scope(&self, module: usize, name: &str, depth: u32) -> bool {
        let m = &self.modules[module];
        m.children.contains_key(name)
            || m.items.contains(name)
            || m.uses.contains_key(name)
            || m.globs.iter().any(|glob| {
                self.resolve(module, glob, depth + 1)
                    .is_some_and(|r| r.tail.is_empty() && self.in_scope(r.module, name, depth + 1))
            })
    }

    /// Follows `rest` down from `module`: child modules, then items, then `use` re-exports.
    fn walk(&self, module: usize, rest: &[String], depth: u32) -> Option<Resolved> {
        let m = &self.modules[module];
        let Some(name) = rest.first() else { return Some(Resolved { module, tail: Vec::new() }) };
        if let Some(&child) = m.children.get(name) {
            return self.walk(child, &rest[1..], depth);
        }
        if m.items.contains(name) {
            return Some(Resolved { module, tail: rest.to_vec() });
        }
        if let Some(target) = m.uses.get(name) {
            let mut through = target.clone();
            through.extend_from_slice(&rest[1..]);
            return self.resolve(module, &through, depth + 1);
        }
        for glob in &m.globs {
            if let Some(r) = self.resolve(module, glob, depth + 1)
                && r.tail.is_empty()
                && self.in_scope(r.module, name, depth + 1)
            {
                return self.walk(r.module, rest, depth + 1);
            }
        }
        // Nothing we parsed defines it (a macro or `include!` does): the module it was looked up in.
        Some(Resolved { module, tail: rest.to_vec() })
    }

    /// The module defining the `macro_rules!` called `name`, as textual scope sees it from `from`:
    /// the module itself or an ancestor, or a `#[macro_use]` child of one of them.
    fn macro_definer(&self, from: usize, name: &str) -> Option<usize> {
        let mut at = Some(from);
        while let Some(module) = at {
            if self.modules[module].macros.contains(name) {
                return Some(module);
            }
            let mut used: Vec<usize> = self.modules[module].children.values().copied().collect();
            while let Some(child) = used.pop() {
                let c = &self.modules[child];
                if c.macro_use {
                    if c.macros.contains(name) {
                        return Some(child);
                    }
                    used.extend(c.children.values().copied());
                }
            }
            at = self.modules[module].parent;
        }
        None
    }

    /// Every import of one module by another, found anywhere in the crate.
    fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (from, module) in self.modules.iter().enumerate() {
            for path in &module.names {
                let Some(r) = self.resolve(from, path, 0) else { continue };
                if r.module != from {
                    let full = std::iter::once(self.name(r.module)).chain(r.tail).collect::<Vec<_>>().join("::");
                    edges.push(Edge { from, to: r.module, evidence: format!("{}: {full}", self.file(from)) });
                }
            }
            for name in &module.invoked {
                if let Some(to) = self.macro_definer(from, name).filter(|&to| to != from) {
                    let evidence = format!("{}: {name}! (defined in {})", self.file(from), self.name(to));
                    edges.push(Edge { from, to, evidence });
                }
            }
        }
        edges
    }

    /// `module` and its ancestors, the crate root first.
    fn lineage(&self, module: usize) -> Vec<usize> {
        let mut line = vec![module];
        while let Some(parent) = self.modules[*line.last().expect("non-empty")].parent {
            line.push(parent);
        }
        line.reverse();
        line
    }

    /// The graphs the rule is checked on, one per module with children.
    fn levels(&self) -> BTreeMap<usize, Level> {
        let mut levels: BTreeMap<usize, Level> = BTreeMap::new();
        for (id, module) in self.modules.iter().enumerate() {
            if !module.children.is_empty() {
                let level = levels.entry(id).or_default();
                level.nodes.extend(module.children.keys().cloned());
                level.own_file = self.file(id);
            }
        }
        for edge in self.edges() {
            let (from, to) = (self.lineage(edge.from), self.lineage(edge.to));
            let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let parent = from[shared - 1];
            let level = levels.get_mut(&parent).expect("a common ancestor has children");
            let node = |line: &[usize]| match line.get(shared) {
                Some(&child) => (self.modules[child].path.last().expect("a child has a name").clone(), true),
                None => (level.own_file.clone(), false),
            };
            let ((a, a_child), (b, b_child)) = (node(&from), node(&to));
            let graph = if a_child && b_child { &mut level.edges } else { &mut level.with_own_file };
            graph.entry((a, b)).or_default().insert(edge.evidence);
        }
        levels
    }
}

/// The graph over one module's children.
#[derive(Default)]
struct Level {
    nodes: BTreeSet<String>,
    /// `(a, b)` → what in `a`'s subtree names something of `b`'s.
    edges: BTreeMap<(String, String), BTreeSet<String>>,
    /// The module's own file (`lib.rs`, `mod.rs`), as a node of `with_own_file` only.
    own_file: String,
    /// Edges to or from the module's own file.
    with_own_file: BTreeMap<(String, String), BTreeSet<String>>,
}

/// Records one module's `use` declarations, paths, macro definitions and invocations.
struct Collect<'a> {
    module: &'a mut Module,
}

impl Collect<'_> {
    fn add_use(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.add_use(&p.tree, prefix);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.add_use_name(prefix, &n.ident, &n.ident),
            syn::UseTree::Rename(r) => self.add_use_name(prefix, &r.ident, &r.rename),
            syn::UseTree::Glob(_) => {
                self.module.globs.push(prefix.clone());
                self.module.names.push(prefix.clone());
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.add_use(tree, prefix);
                }
            }
        }
    }

    fn add_use_name(&mut self, prefix: &[String], ident: &syn::Ident, alias: &syn::Ident) {
        let mut path = prefix.to_vec();
        if ident != "self" {
            path.push(ident.to_string());
        }
        let alias = if ident == "self" && alias == "self" { path.last().cloned() } else { Some(alias.to_string()) };
        if let Some(alias) = alias.filter(|a| a != "_") {
            self.module.uses.insert(alias, path.clone());
        }
        self.module.names.push(path);
    }
}

impl<'ast> Visit<'ast> for Collect<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if test_only(item_attrs(item)) {
            return;
        }
        match item {
            syn::Item::Use(u) if u.leading_colon.is_none() => self.add_use(&u.tree, &mut Vec::new()),
            syn::Item::Use(_) => {}
            syn::Item::Macro(m) if m.ident.is_some() => {
                self.module.macros.insert(m.ident.as_ref().expect("checked").to_string());
                token_paths(m.mac.tokens.clone(), &mut self.module.names);
            }
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        // A one-segment name is local, another crate's, or `use`d (and the `use` counts already).
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            self.module.names.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(name) = mac.path.get_ident() {
            self.module.invoked.insert(name.to_string());
        }
        token_paths(mac.tokens.clone(), &mut self.module.names);
        visit::visit_macro(self, mac);
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        // Doc comments are `#[doc = "…"]`, a name and a string: never read.
        if let syn::Meta::List(list) = &attr.meta {
            token_paths(list.tokens.clone(), &mut self.module.names);
        }
        visit::visit_attribute(self, attr);
    }
}

/// The paths of two or more segments in a token stream (a macro's body or arguments), such as
/// `$crate::cli::output::write` or `crate::jobs::store::redact`.
fn token_paths(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize, c: char| matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == c);
    let path_sep = |i: usize| {
        matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
            && punct(i + 1, ':')
    };
    let mut i = 0;
    while i < trees.len() {
        let (mut segments, mut next) = match &trees[i] {
            TokenTree::Group(group) => {
                token_paths(group.stream(), out);
                i += 1;
                continue;
            }
            TokenTree::Punct(p) if p.as_char() == '$' => match trees.get(i + 1) {
                Some(TokenTree::Ident(id)) if id == "crate" => (vec!["$crate".to_string()], i + 2),
                // A metavariable (`$name`), whatever it stands for.
                _ => (Vec::new(), i + 2),
            },
            TokenTree::Ident(id) => (vec![id.to_string()], i + 1),
            _ => (Vec::new(), i + 1),
        };
        while !segments.is_empty() && path_sep(next) {
            let Some(TokenTree::Ident(id)) = trees.get(next + 2) else { break };
            segments.push(id.to_string());
            next += 3;
        }
        // After `::` (`::std::x`, `<T>::f`) a path is not the start of one.
        let continued = i >= 2 && path_sep(i - 2);
        if segments.len() > 1 && !continued {
            out.push(segments);
        }
        i = next;
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The name an item defines in its module's namespace (`use` and `mod` are handled apart).
fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// `#[cfg(test)]` (or any `cfg` that needs `test` and has no `not`): compiled for unit tests only.
fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let syn::Meta::List(list) = &attr.meta else { return false };
        let mut idents = BTreeSet::new();
        collect_idents(list.tokens.clone(), &mut idents);
        list.path.is_ident("cfg") && idents.contains("test") && !idents.contains("not")
    })
}

fn collect_idents(tokens: TokenStream, out: &mut BTreeSet<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(id) => {
                out.insert(id.to_string());
            }
            TokenTree::Group(group) => collect_idents(group.stream(), out),
            _ => {}
        }
    }
}

/// One cycle per strongly connected part of the graph (the shortest through its first node), or
/// through `through` only, when given.
fn cycles<'a>(edges: impl Iterator<Item = &'a (String, String)>, through: Option<&str>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().insert(b);
        next.entry(b).or_default();
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&str> = next[start].iter().copied().collect();
        while let Some(node) = queue.pop_front() {
            if seen.insert(node) {
                queue.extend(next[node].iter().copied());
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|&n| (n, reach(n))).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for (&node, from_node) in &reached {
        if done.contains(node) || !from_node.contains(node) || through.is_some_and(|t| t != node) {
            continue;
        }
        done.extend(from_node.iter().filter(|other| reached[**other].contains(node)));
        // Breadth first from `node` back to itself: the shortest cycle through it.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([node]);
        'search: while let Some(at) = queue.pop_front() {
            for &to in &next[at] {
                if to == node {
                    let mut back = vec![node.to_string()];
                    let mut step = at;
                    while step != node {
                        back.push(step.to_string());
                        step = came_from[step];
                    }
                    back.push(node.to_string());
                    back.reverse();
                    found.push(back);
                    break 'search;
                }
                if !came_from.contains_key(to) {
                    came_from.insert(to, at);
                    queue.push_back(to);
                }
            }
        }
    }
    found
}

/// Whether `a` and `b` reach each other in the graph.
fn in_cycle(edges: &BTreeMap<(String, String), BTreeSet<String>>, a: &str, b: &str) -> bool {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_string()]);
        while let Some(at) = queue.pop_front() {
            for (_, next) in edges.keys().filter(|(x, _)| *x == at) {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    queue.push_back(next.clone());
                }
            }
        }
        false
    };
    reaches(a, b) && reaches(b, a)
}

/// A cycle and, for each of its edges, the first thing that made it.
fn explain(cycle: &[String], edges: &BTreeMap<(String, String), BTreeSet<String>>) -> String {
    let mut text = cycle.join(" -> ");
    for pair in cycle.windows(2) {
        let why = &edges[&(pair[0].clone(), pair[1].clone())];
        let more = if why.len() > 1 { format!(" (and {} more)", why.len() - 1) } else { String::new() };
        text.push_str(&format!(
            "\n    {} -> {}: {}{more}",
            pair[0],
            pair[1],
            why.first().expect("an edge has a reason")
        ));
    }
    text
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn this_crate() -> &'static Crate {
    static CRATE: OnceLock<Crate> = OnceLock::new();
    CRATE.get_or_init(|| Crate::load(&src()))
}

fn listing(level: &Level) -> String {
    level
        .nodes
        .iter()
        .map(|node| {
            let to: Vec<&str> = level.edges.keys().filter(|(a, _)| a == node).map(|(_, b)| b.as_str()).collect();
            format!("  {node} -> {}", to.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every cycle breaking the rule, explained, one per strongly connected part of each level.
fn violations(krate: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (module, level) in krate.levels() {
        for cycle in cycles(level.edges.keys(), None) {
            found.push(format!(
                "import cycle among the children of {}: {}",
                krate.name(module),
                explain(&cycle, &level.edges)
            ));
        }
    }
    found
}

#[test]
fn modules_at_every_level_import_each_other_without_a_cycle() {
    let krate = this_crate();
    let levels = krate.levels();
    for (&module, level) in &levels {
        if !level.edges.is_empty() {
            println!("{}:\n{}", krate.name(module), listing(level));
        }
    }
    println!("\nInformation (not checked): cycles through a parent's own file, were it a node too:");
    for (&module, level) in &levels {
        let mut all = level.edges.clone();
        all.extend(level.with_own_file.iter().map(|(k, v)| (k.clone(), v.clone())));
        for cycle in cycles(all.keys(), Some(&level.own_file)) {
            let with: Vec<&str> =
                level.nodes.iter().map(String::as_str).filter(|n| in_cycle(&all, &level.own_file, n)).collect();
            println!("  in {} (with {}), e.g. {}", krate.name(module), with.join(", "), explain(&cycle, &all));
        }
    }
    let declared: BTreeSet<&Path> = krate.modules.iter().map(|m| m.file.as_path()).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files.iter().filter(|f| !declared.contains(f.as_path()) && !f.ends_with("src/main.rs")) {
        println!("  not in the module tree (outside #[cfg(test)]): {}", file.display());
    }
    let broken = violations(krate);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules it imports, from the crate root's level.
fn top_level(krate: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    let levels = krate.levels();
    let root = &levels[&ROOT];
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        root.nodes.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
    for (a, b) in root.edges.keys() {
        graph.entry(a.clone()).or_default().insert(b.clone());
    }
    graph
}

#[test]
fn the_parser_finds_the_crates_modules() {
    let krate = this_crate();
    let graph = top_level(krate);
    assert!(graph.contains_key("api") && graph.contains_key("model"), "the scan found the crate's modules: {graph:?}");
    let levels = krate.levels();
    for dir in ["compiler", "model"] {
        let module = krate.modules[ROOT].children[dir];
        assert!(levels[&module].nodes.len() > 3, "the scan found {dir}'s files: {:?}", levels[&module].nodes);
    }
}

#[test]
fn nothing_at_run_time_imports_the_compiler() {
    let graph = top_level(this_crate());
    let importers: Vec<&String> =
        graph.iter().filter(|(_, to)| to.contains("compiler")).map(|(from, _)| from).collect();
    for from in &importers {
        assert!(
            COMPILER_USERS.contains(&from.as_str()),
            "`{from}` imports `crate::compiler`; run-time code uses `crate::model`"
        );
    }
    assert!(!importers.is_empty(), "the CLI does import the compiler: the scan is broken");
}

#[test]
fn the_model_stands_on_nothing_else_in_the_crate() {
    // build.rs includes `src/model` by path next to the compiler, so it may name nothing else.
    let krate = this_crate();
    let model = krate.modules[ROOT].children["model"];
    let inside = |m: usize| krate.lineage(m).contains(&model);
    let outside: Vec<String> =
        krate.edges().into_iter().filter(|e| inside(e.from) && !inside(e.to)).map(|e| e.evidence).collect();
    assert!(outside.is_empty(), "model must import only std and itself: {outside:#?}");
}

/// The parser and the rule on a small crate written for the purpose.
#[test]
fn the_rule_sees_what_rustc_sees_and_nothing_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    let files = [
        (
            "lib.rs",
            "//! crate::c::h in a comment\npub mod a;\npub mod b;\nmod c;\n#[macro_use]\nmod m;\n#[path = \"other/d_impl.rs\"]\nmod d;\n",
        ),
        ("a/mod.rs", "mod inner;\npub use inner::Thing;\nfn helper() {}\n"),
        ("a/inner.rs", "use super::helper;\npub struct Thing;\npub fn f() { crate::b::g(); helper() }\n"),
        (
            "b.rs",
            "/// [`crate::c::h`]\nuse crate::a::Thing;\npub fn g() {}\n#[cfg(test)]\nmod tests { use crate::c::*; }\n",
        ),
        ("c.rs", "// crate::d::k\npub fn h() { call_b!(); }\nmod inline { fn x(_: super::super::a::Thing) {} }\n"),
        ("m.rs", "macro_rules! call_b { () => { $crate::b::g() }; }\n"),
        ("other/d_impl.rs", "pub fn k() { tracing::info!(x = %super::c::h()); }\n"),
    ];
    for (name, text) in files {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let krate = Crate::load(&src);
    let levels = krate.levels();
    let root = &levels[&ROOT];
    let edges: Vec<String> = root.edges.iter().map(|((a, b), why)| format!("{a}->{b} {why:?}")).collect();
    assert_eq!(
        edges,
        [
            r#"a->b {"src/a/inner.rs: crate::b::g"}"#,
            r#"b->a {"src/b.rs: crate::a::inner::Thing"}"#,
            r#"c->a {"src/c.rs: crate::a::inner::Thing"}"#,
            r#"c->m {"src/c.rs: call_b! (defined in crate::m)"}"#,
            r#"d->c {"src/other/d_impl.rs: crate::c::h"}"#,
            r#"m->b {"src/m.rs: crate::b::g"}"#,
        ]
    );
    assert_eq!(cycles(root.edges.keys(), None), [["a", "b", "a"]]);
    let a = &levels[&krate.modules[ROOT].children["a"]];
    assert!(a.edges.is_empty(), "a's own file is not a node: {:?}", a.edges.keys());
    let all: Vec<_> = a.with_own_file.keys().collect();
    assert_eq!(cycles(all.into_iter(), Some("src/a/mod.rs")), [["src/a/mod.rs", "inner", "src/a/mod.rs"]]);
    assert_eq!(violations(&krate).len(), 1);
}
