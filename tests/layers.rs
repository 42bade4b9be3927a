//! The house rule (ARCHITECTURE.md, issue #19), checked on every `cargo test`: read `src/` as a
//! graph of imports between files and fail on an import that points up a layer, on a front-end
//! that imports another front-end, and on an import cycle between files, naming the files.
//!
//! The layers, top to bottom (a top-level name of `src/` decides a file's layer):
//!
//! | layer | names |
//! | --- | --- |
//! | 6 the crate root | `lib.rs`, `dispatch.rs` |
//! | 5 front-ends | every other top-level folder (`cli/`, `batch/`, `serve/`, `mcp/`, …) |
//! | 4 shared front-end code | `frontend/` |
//! | 3 the engine | `engine/` |
//! | 2 credentials, the backend, files | `auth/`, `backend/`, `output/` |
//! | 1 foundations | `foundation/` |
//!
//! An edge is any path that names another file's module: `use` trees (`crate::`, `super::`,
//! `self::`, a child module, a name an earlier `use` bound to a module) and the same paths
//! written inline in code. A path ends at the longest module prefix it names, so an item
//! re-exported by a `mod.rs` is an edge to that `mod.rs` (and the re-export an edge from it):
//! a cycle cannot hide behind a re-export. `mod x;` declarations are not edges.
//!
//! `LAYERS_DUMP=1 cargo test --test layers -- --nocapture` prints the whole graph, one `EDGE a -> b`
//! line per import, for drawing or grepping while you reshape the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level names below the front-ends, with their layer. Anything else under `src/` is a
/// front-end (layer 5): adding a mode is adding a folder.
const LAYERS: &[(&str, u8)] = &[
    ("lib", 6),
    ("dispatch", 6),
    ("frontend", 4),
    ("engine", 3),
    ("auth", 2),
    ("backend", 2),
    ("output", 2),
    ("foundation", 1),
];
const FRONT_END: u8 = 5;

type Module = Vec<String>;

struct Source {
    file: String,
    module: Module,
    text: String,
}

fn layer_of(module: &Module) -> (u8, String) {
    let top = module.first().map(String::as_str).unwrap_or("lib");
    let layer = LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, layer)| *layer)
        .unwrap_or(FRONT_END);
    (layer, top.to_string())
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src");
            let mut module: Module = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if module == ["main"] {
                continue; // the binary: its own crate, calling the library's public API
            }
            if module.last().is_some_and(|l| l == "mod" || l == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("source text");
            out.push(Source {
                file: format!("src/{}", rel.to_string_lossy()),
                module,
                text: strip(&text),
            });
        }
    }
}

/// The text with comments, string and char literals blanked, so only code is read.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || c == 'b')
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
            && raw_string_start(&b, i).is_some()
        {
            let (hashes, body) = raw_string_start(&b, i).expect("checked");
            i = body;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"`, `r#"`, `br"`, `br#"`: the number of hashes and where the body starts.
fn raw_string_start(b: &[char], mut i: usize) -> Option<(usize, usize)> {
    if b[i] == 'b' {
        i += 1;
    }
    if b.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let mut hashes = 0;
    while b.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (b.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Sep, // ::
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

fn tokens(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let mut word: String = b[start..i].iter().collect();
            if word == "r" && b.get(i) == Some(&'#') {
                // raw identifier r#type
                i += 1;
                let s = i;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                word = b[s..i].iter().collect();
            }
            out.push(Tok::Ident(word));
            continue;
        }
        match c {
            ':' if b.get(i + 1) == Some(&':') => {
                out.push(Tok::Sep);
                i += 2;
                continue;
            }
            '{' => out.push(Tok::Open),
            '}' => out.push(Tok::Close),
            ',' => out.push(Tok::Comma),
            ';' => out.push(Tok::Semi),
            '*' => out.push(Tok::Star),
            c if c.is_whitespace() => {}
            _ => out.push(Tok::Other),
        }
        i += 1;
    }
    out
}

/// Expands a `use` tree starting at `toks[i]` into full paths; returns them and the index after.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(word)) if word == "as" => {
                // `x as y`: the alias is y
                if let Some(Tok::Ident(alias)) = toks.get(i + 1) {
                    out.push((path.clone(), alias.clone()));
                    path.clear();
                    i += 2;
                } else {
                    i += 1;
                }
            }
            Some(Tok::Ident(word)) => {
                path.push(word.clone());
                i += 1;
            }
            Some(Tok::Sep) => i += 1,
            Some(Tok::Open) => {
                i += 1;
                loop {
                    i = use_tree(toks, i, &path, out);
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        Some(Tok::Close) => {
                            i += 1;
                            break;
                        }
                        _ => return i,
                    }
                }
                path.clear();
            }
            Some(Tok::Star) => {
                out.push((path.clone(), String::new()));
                path.clear();
                i += 1;
            }
            _ => {
                if path.len() > prefix.len() {
                    let name = path.last().cloned().unwrap_or_default();
                    out.push((path, name));
                }
                return i;
            }
        }
    }
}

/// The module each token is in: the file's module plus the inline `mod name { … }` blocks
/// around it (so `super::` inside `mod tests` names the file's own module).
fn scopes(toks: &[Tok], file: &Module) -> Vec<Module> {
    let mut out = Vec::with_capacity(toks.len());
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut current = file.clone();
    for (i, tok) in toks.iter().enumerate() {
        out.push(current.clone());
        match tok {
            Tok::Open => {
                depth += 1;
                if i >= 2 && toks[i - 2] == Tok::Ident("mod".into()) {
                    if let Tok::Ident(name) = &toks[i - 1] {
                        inline.push((name.clone(), depth));
                        current.push(name.clone());
                    }
                }
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                    current.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    out
}

struct Graph<'a> {
    modules: BTreeMap<Module, &'a Source>,
}

impl Graph<'_> {
    /// The module a path written in `from` names, as an absolute module path (the longest
    /// prefix that is a file of the crate), or `None` for a path outside the crate.
    fn resolve(
        &self,
        from: &Module,
        path: &[String],
        aliases: &BTreeMap<String, Module>,
        children: &BTreeSet<String>,
    ) -> Option<Module> {
        let first = path.first()?;
        let mut abs: Module = match first.as_str() {
            "crate" => path[1..].to_vec(),
            "self" => from
                .iter()
                .cloned()
                .chain(path[1..].iter().cloned())
                .collect(),
            "super" => {
                let mut base = from.clone();
                let mut rest = path;
                while rest.first().is_some_and(|p| p == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.into_iter().chain(rest.iter().cloned()).collect()
            }
            name if children.contains(name) => {
                from.iter().cloned().chain(path.iter().cloned()).collect()
            }
            name => match aliases.get(name) {
                Some(module) => module
                    .iter()
                    .cloned()
                    .chain(path[1..].iter().cloned())
                    .collect(),
                None => return None,
            },
        };
        while !abs.is_empty() && !self.modules.contains_key(&abs) {
            abs.pop();
        }
        if abs.is_empty() && !matches!(first.as_str(), "crate" | "super" | "self") {
            return None;
        }
        Some(abs)
    }

    fn edges(&self, source: &Source) -> BTreeSet<Module> {
        let toks = tokens(&source.text);
        let scopes = scopes(&toks, &source.module);
        let children: BTreeSet<String> = self
            .modules
            .keys()
            .filter(|m| m.len() == source.module.len() + 1 && m.starts_with(&source.module))
            .map(|m| m.last().cloned().unwrap_or_default())
            .collect();
        let mut aliases: BTreeMap<String, Module> = BTreeMap::new();
        let mut edges = BTreeSet::new();
        let mut i = 0;
        let mut used_ranges = Vec::new();
        // Pass 1: `use` trees, which also bind aliases to modules.
        while i < toks.len() {
            if toks[i] == Tok::Ident("use".into()) {
                let mut paths = Vec::new();
                let end = use_tree(&toks, i + 1, &[], &mut paths);
                used_ranges.push((i, end));
                for (path, alias) in paths {
                    if let Some(module) = self.resolve(&scopes[i], &path, &aliases, &children) {
                        if !alias.is_empty()
                            && alias != "self"
                            && self.is_module_path(&path, &module)
                        {
                            aliases.insert(alias.clone(), module.clone());
                        }
                        if alias == "self" {
                            if let Some(last) = path.iter().rev().nth(1) {
                                aliases.insert(last.clone(), module.clone());
                            }
                        }
                        edges.insert(module);
                    }
                }
                i = end;
            } else {
                i += 1;
            }
        }
        // Pass 2: inline paths `a::b::c` outside `use` trees.
        let mut i = 0;
        while i < toks.len() {
            if let Some(&(_, end)) = used_ranges.iter().find(|(s, _)| *s == i) {
                i = end;
                continue;
            }
            if let Tok::Ident(word) = &toks[i] {
                let preceded_by_sep = i > 0 && toks[i - 1] == Tok::Sep;
                if !preceded_by_sep && toks.get(i + 1) == Some(&Tok::Sep) {
                    let mut path = vec![word.clone()];
                    let mut j = i + 1;
                    while toks.get(j) == Some(&Tok::Sep) {
                        match toks.get(j + 1) {
                            Some(Tok::Ident(next)) => {
                                path.push(next.clone());
                                j += 2;
                            }
                            _ => break,
                        }
                    }
                    if let Some(module) = self.resolve(&scopes[i], &path, &aliases, &children) {
                        edges.insert(module);
                    }
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
        edges.remove(&source.module);
        edges
    }

    /// Whether `path` (resolved to `module`) names the module itself, not an item in it.
    fn is_module_path(&self, path: &[String], module: &Module) -> bool {
        module.last().is_some_and(|last| path.last() == Some(last))
    }
}

fn read_graph() -> (Vec<Source>, BTreeMap<String, BTreeSet<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    collect(&root, &root, &mut sources);
    let graph = Graph {
        modules: sources.iter().map(|s| (s.module.clone(), s)).collect(),
    };
    let mut files = BTreeMap::new();
    for source in &sources {
        let targets = graph
            .edges(source)
            .into_iter()
            .filter_map(|m| graph.modules.get(&m).map(|s| s.file.clone()))
            .filter(|f| *f != source.file)
            .collect();
        files.insert(source.file.clone(), targets);
    }
    (sources, files)
}

fn violations(sources: &[Source], edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let module_of: BTreeMap<&str, &Module> = sources
        .iter()
        .map(|s| (s.file.as_str(), &s.module))
        .collect();
    let mut problems = Vec::new();
    for (from, targets) in edges {
        let (from_layer, from_top) = layer_of(module_of[from.as_str()]);
        for to in targets {
            let (to_layer, to_top) = layer_of(module_of[to.as_str()]);
            if to_layer > from_layer {
                problems.push(format!(
                    "{from} imports {to}: layer {from_layer} ({from_top}) may not import layer {to_layer} ({to_top})"
                ));
            } else if from_layer == FRONT_END && to_layer == FRONT_END && from_top != to_top {
                problems.push(format!(
                    "{from} imports {to}: a front-end ({from_top}/) may not import another front-end ({to_top}/); move what both need to frontend/"
                ));
            }
        }
    }
    for cycle in cycles(edges) {
        problems.push(format!("import cycle between files: {}", cycle.join(" → ")));
    }
    problems
}

/// Strongly connected components with more than one file (Tarjan), each shown as one cycle
/// through its files.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        components: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    // Concrete cycles: a shortest one through each file of a component, each set of files once.
    let mut seen = BTreeSet::new();
    state
        .components
        .iter()
        .flat_map(|component| {
            let members: BTreeSet<&str> = component.iter().copied().collect();
            members
                .clone()
                .into_iter()
                .map(move |start| (members.clone(), start))
        })
        .map(|(members, start)| {
            let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            while let Some(v) = queue.pop_front() {
                for w in edges.get(v).into_iter().flatten() {
                    let w = w.as_str();
                    if w == start {
                        found = Some(v);
                        break;
                    }
                    if members.contains(w) && !previous.contains_key(w) {
                        previous.insert(w, v);
                        queue.push_back(w);
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            let mut path = vec![start.to_string()];
            let mut v = found.unwrap_or(start);
            let mut back = Vec::new();
            while v != start {
                back.push(v.to_string());
                v = previous.get(v).copied().unwrap_or(start);
            }
            back.reverse();
            path.extend(back);
            path.push(start.to_string());
            path
        })
        .filter(|path| seen.insert(path[1..].iter().cloned().collect::<BTreeSet<_>>()))
        .collect()
}

#[test]
fn imports_point_down_the_layers_and_no_files_import_each_other_in_a_circle() {
    let (sources, edges) = read_graph();
    assert!(sources.len() > 20, "src/ was not read");
    let problems = violations(&sources, &edges);
    if std::env::var_os("LAYERS_DUMP").is_some() {
        for (from, targets) in &edges {
            for to in targets {
                println!("EDGE {from} -> {to}");
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in src/:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn source(file: &str, text: &str) -> Source {
    let mut module: Module = file
        .trim_start_matches("src/")
        .split('/')
        .map(|p| p.trim_end_matches(".rs").to_string())
        .collect();
    if module.last().is_some_and(|l| l == "mod" || l == "lib") {
        module.pop();
    }
    Source {
        file: file.into(),
        module,
        text: strip(text),
    }
}

fn check(files: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<Source> = files.iter().map(|(f, t)| source(f, t)).collect();
    let graph = Graph {
        modules: sources.iter().map(|s| (s.module.clone(), s)).collect(),
    };
    let edges = sources
        .iter()
        .map(|s| {
            let targets = graph
                .edges(s)
                .into_iter()
                .filter_map(|m| graph.modules.get(&m).map(|t| t.file.clone()))
                .filter(|f| *f != s.file)
                .collect();
            (s.file.clone(), targets)
        })
        .collect();
    violations(&sources, &edges)
}

#[test]
fn the_checker_names_both_files_of_a_front_end_importing_another() {
    let problems = check(&[
        ("src/lib.rs", "mod cli; mod serve;"),
        ("src/cli/mod.rs", "pub(crate) fn parse() {}"),
        (
            "src/serve/mod.rs",
            "use crate::cli::parse;\nfn f() { parse() }",
        ),
    ]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("src/serve/mod.rs imports src/cli/mod.rs"),
        "{problems:?}"
    );
}

#[test]
fn the_checker_names_an_import_up_a_layer_written_inline_or_through_an_alias() {
    let problems = check(&[
        ("src/lib.rs", ""),
        ("src/engine/mod.rs", "pub(crate) mod events;"),
        ("src/engine/events.rs", "pub(crate) struct Reporter;"),
        (
            "src/backend/stream.rs",
            "fn f(r: crate::engine::events::Reporter) {}",
        ),
        (
            "src/output/mod.rs",
            "use crate::engine;\nfn f(r: engine::events::Reporter) {}",
        ),
        (
            "src/foundation/error.rs",
            "use crate::{backend::stream, engine::{self}};",
        ),
    ]);
    let text = problems.join("\n");
    assert!(
        text.contains("src/backend/stream.rs imports src/engine/events.rs"),
        "{text}"
    );
    assert!(
        text.contains("src/output/mod.rs imports src/engine/events.rs"),
        "{text}"
    );
    assert!(
        text.contains("src/foundation/error.rs imports src/backend/stream.rs"),
        "{text}"
    );
    assert!(
        text.contains("src/foundation/error.rs imports src/engine/mod.rs"),
        "{text}"
    );
}

#[test]
fn the_checker_finds_a_cycle_through_a_re_export_and_ignores_comments_and_strings() {
    let problems = check(&[
        ("src/lib.rs", ""),
        (
            "src/auth/mod.rs",
            "mod store; mod fence; pub(crate) use store::Store;",
        ),
        (
            "src/auth/store.rs",
            "pub(crate) struct Store;\nfn f() { super::fence::g() }",
        ),
        (
            "src/auth/fence.rs",
            "use super::Store; // crate::engine::x\nfn g() { let _ = \"crate::cli::y\"; }",
        ),
    ]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("import cycle between files: "),
        "{problems:?}"
    );
    for file in ["src/auth/mod.rs", "src/auth/store.rs", "src/auth/fence.rs"] {
        assert!(problems[0].contains(file), "{problems:?}");
    }
}
