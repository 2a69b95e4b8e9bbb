//! Just enough Markdown for the docs checks: the prose of a page (fenced blocks blanked),
//! its inline code spans, its sections, tables, links and heading anchors.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, by its path from the root.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The Markdown pages the checks read: the README, every page of docs/, deploy/README.md.
pub fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_owned(), "deploy/README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| Path::new(name).extension().is_some_and(|e| e == "md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// `text` with the lines of fenced code blocks (fences included) blanked, so headings,
/// spans and links are only those of the prose.
pub fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The inline code spans of `text` (prose only), in order. A span may cross a line
/// break; its text is joined with a space there.
pub fn code_spans(text: &str) -> Vec<String> {
    let prose = prose(text);
    let parts: Vec<&str> = prose.split('`').collect();
    assert!(parts.len() % 2 == 1, "an unclosed ` in:\n{}", &prose[..prose.len().min(400)]);
    parts.iter().skip(1).step_by(2).map(|s| s.replace('\n', " ")).collect()
}

/// The section of `text` under the heading `heading` (its exact text after the `#`s),
/// up to the next heading of the same or a higher level.
pub fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let mut offset = 0;
    let mut start = None;
    let mut level = 0;
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && trimmed.starts_with('#') {
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            let title = trimmed[hashes..].trim();
            match start {
                None if title == heading => {
                    start = Some(offset + line.len());
                    level = hashes;
                }
                Some(s) if hashes <= level => return &text[s..offset],
                _ => {}
            }
        }
        offset += line.len();
    }
    let s = start.unwrap_or_else(|| panic!("no heading '{heading}'"));
    &text[s..]
}

/// The body rows of the first table in `text` (header and separator left out), each as
/// its cells; a `|` inside a code span does not split.
pub fn table(text: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    assert!(rows.len() > 2, "no table with a body in:\n{text}");
    rows[2..].to_vec()
}

fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut code = false;
    for c in line.trim().trim_start_matches('|').chars() {
        match c {
            '`' => {
                code = !code;
                cell.push(c);
            }
            '|' if !code => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells
}

/// The targets of the inline links of `text`'s prose: `[text](target)`.
pub fn links(text: &str) -> Vec<String> {
    prose(text)
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .collect()
}

/// The anchors of `text`'s headings, as GitHub makes them: lower case, punctuation other
/// than `-` and `_` dropped, spaces as `-`.
pub fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Is `s` a name made of `a-z`, `0-9` and `_`, starting with a letter (a proto field)?
pub fn is_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Is `s` a name made of `A-Z`, `0-9` and `_`, starting with a letter (an enum value)?
pub fn is_screaming(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The names a documented name stands for: `a_{b,c}_d` is `a_b_d` and `a_c_d`; a brace
/// group right after a letter is the name's labels, returned beside it
/// (`x_total{format,status}` is `x_total` with labels `format` and `status`).
pub fn expand(name: &str) -> Vec<(String, Vec<String>)> {
    let (name, labels) = match name.strip_suffix('}').and_then(|n| n.rsplit_once('{')) {
        Some((base, labels)) if base.ends_with(|c: char| c.is_ascii_alphanumeric()) => {
            (base, labels.split(',').map(str::to_owned).collect())
        }
        _ => (name, Vec::new()),
    };
    let names = match name.split_once('{') {
        Some((head, rest)) => {
            let (alternatives, tail) =
                rest.split_once('}').unwrap_or_else(|| panic!("unclosed {{ in {name}"));
            alternatives.split(',').map(|a| format!("{head}{a}{tail}")).collect()
        }
        None => vec![name.to_owned()],
    };
    names.into_iter().map(|n| (n, labels.clone())).collect()
}

/// The `--flags` named in `span` (a span may name several, or a flag with its value).
pub fn flags_in(span: &str) -> Vec<String> {
    span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2 && w.as_bytes()[2].is_ascii_lowercase())
        .map(str::to_owned)
        .collect()
}

/// Does `path` exist in the repository?
pub fn exists(path: &Path) -> bool {
    root().join(path).exists()
}
