//! `configs/README.md` against the tree it describes: every bundled plugin, every example
//! config and every config key is in it, and it names no plugin or file that is not there.
//! Reads files only; no memcached, no router.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const DOC: &str = "configs/README.md";
const PLUGINS_HEADING: &str = "## Bundled plugins";
const EXAMPLES_HEADING: &str = "## Example configs";
const RAW_STRUCTS: &str = "host/src/config/raw.rs";

/// The workspace root: the tests crate is `<root>/tests`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Names of the entries of `dir` (relative to the root) that `keep` accepts, sorted.
fn entries(dir: &str, keep: impl Fn(&Path) -> bool) -> BTreeSet<String> {
    let path = root().join(dir);
    let names: BTreeSet<String> = fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display())))
        .filter(|e| keep(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.is_empty(),
        "{dir}: nothing found to check the doc against"
    );
    names
}

/// The body rows of the tables in the `heading` section of the doc: every `|` line up to the
/// next `## ` heading, without header rows and `| --- |` separators.
fn table_rows<'a>(doc: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != heading);
    assert!(
        lines.next().is_some(),
        "{DOC} has no `{heading}` section (the heading must be exactly that)"
    );
    let table: Vec<&str> = lines
        .take_while(|l| !l.starts_with("## "))
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .collect();
    let is_separator = |l: &str| l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
    let rows: Vec<&str> = table
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let header = table.get(i + 1).is_some_and(|next| is_separator(next));
            !header && !is_separator(l)
        })
        .map(|(_, l)| *l)
        .collect();
    assert!(!rows.is_empty(), "{DOC}: `{heading}` has no table rows");
    rows
}

/// The first `code span` of a table row's first cell: the name the row documents.
fn first_cell_name(row: &str) -> Option<&str> {
    let cell = row.strip_prefix('|')?.split('|').next()?;
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len]).filter(|name| !name.is_empty())
}

/// The names a section's table documents; a row without a name, or a name given twice, fails.
fn documented(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for row in table_rows(doc, heading) {
        let name = first_cell_name(row).unwrap_or_else(|| {
            panic!("{DOC}, `{heading}`: row without a `name` in its first cell: {row}")
        });
        assert!(
            names.insert(name.to_string()),
            "{DOC}, `{heading}`: `{name}` has two rows"
        );
    }
    names
}

/// Fails with both directions of a mismatch between the tree and the doc.
fn assert_same(what: &str, heading: &str, on_disk: &BTreeSet<String>, in_doc: &BTreeSet<String>) {
    let missing: Vec<&str> = on_disk.difference(in_doc).map(String::as_str).collect();
    let extra: Vec<&str> = in_doc.difference(on_disk).map(String::as_str).collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "  in {what} but not in the table: {}",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "  in the table but not in {what}: {}",
            extra.join(", ")
        ));
    }
    assert!(
        problems.is_empty(),
        "{DOC}, `{heading}`, does not match {what}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_bundled_plugin_is_listed() {
    let doc = read(DOC);
    let on_disk = entries("plugins", |p| p.join("Cargo.toml").is_file());
    let in_doc = documented(&doc, PLUGINS_HEADING);
    assert_same(
        "plugins/ (directories with a Cargo.toml)",
        PLUGINS_HEADING,
        &on_disk,
        &in_doc,
    );

    let broken: Vec<&str> = table_rows(&doc, PLUGINS_HEADING)
        .into_iter()
        .filter(|row| {
            let name = first_cell_name(row).unwrap_or_default();
            !row.contains(&format!("](../plugins/{name}/README.md)"))
                || !root()
                    .join("plugins")
                    .join(name)
                    .join("README.md")
                    .is_file()
        })
        .collect();
    assert!(
        broken.is_empty(),
        "{DOC}, `{PLUGINS_HEADING}`: these rows must link ../plugins/<name>/README.md, and that \
         file must exist:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn every_example_config_is_listed() {
    let doc = read(DOC);
    let on_disk = entries("configs", |p| {
        p.is_file()
            && p.extension()
                .is_some_and(|ext| ext == "toml" || ext == "service")
    });
    let in_doc = documented(&doc, EXAMPLES_HEADING);
    assert_same(
        "configs/ (*.toml and *.service)",
        EXAMPLES_HEADING,
        &on_disk,
        &in_doc,
    );
}

#[test]
fn every_config_key_is_documented() {
    let doc = read(DOC);
    let fields = raw_fields(&read(RAW_STRUCTS));
    let missing: Vec<String> = fields
        .iter()
        .filter(|(_, key)| !doc.contains(&format!("`{key}`")))
        .map(|(owner, key)| format!("`{key}` (field of {owner})"))
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC} does not document these keys of {RAW_STRUCTS} (each must appear as `key`):\n  {}",
        missing.join("\n  ")
    );
}

/// `(struct, key)` for every field of every `struct Raw...` in `src`, the key being what serde
/// reads: the field name, or its `#[serde(rename = "...")]`. Fails rather than guess at what it
/// does not understand, and when it finds nothing.
fn raw_fields(src: &str) -> Vec<(String, String)> {
    for unsupported in ["rename_all", "alias ="] {
        assert!(
            !src.contains(unsupported),
            "{RAW_STRUCTS} uses serde's `{unsupported}`, which tests/e2e/docs.rs does not read yet"
        );
    }
    let mut fields = Vec::new();
    let mut structs = 0;
    let mut current: Option<String> = None;
    let mut rename: Option<String> = None;
    let mut flatten = false;
    for line in src.lines().map(str::trim) {
        let Some(owner) = &current else {
            let header = line
                .strip_prefix("pub ")
                .or_else(|| line.strip_prefix("pub(crate) "))
                .unwrap_or(line);
            if let Some(rest) = header.strip_prefix("struct Raw") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    line.ends_with('{'),
                    "{RAW_STRUCTS}: cannot read the fields of `{line}` (expected `struct Raw... {{`)"
                );
                current = Some(format!("Raw{name}"));
                structs += 1;
            }
            continue;
        };
        if line.starts_with('}') {
            current = None;
        } else if line.starts_with("#[") {
            if let Some(at) = line.find("rename = \"") {
                let value = &line[at + "rename = \"".len()..];
                rename = value.split('"').next().map(str::to_string);
            }
            flatten |= line.contains("flatten");
        } else if let Some(name) = field_name(line) {
            let key = rename.take().unwrap_or(name);
            // A flattened struct's own fields are the keys; it is a `Raw...` struct too.
            if !std::mem::take(&mut flatten) {
                fields.push((owner.clone(), key));
            }
        }
    }
    assert!(
        structs > 0 && !fields.is_empty(),
        "{RAW_STRUCTS}: found {structs} `struct Raw...` blocks and {} fields; the extractor in \
         tests/e2e/docs.rs no longer understands the file",
        fields.len()
    );
    fields
}

/// The field a line declares (`pub name: Type,`, `name: Type`), if it declares one.
fn field_name(line: &str) -> Option<String> {
    let line = ["pub ", "pub(crate) ", "pub(super) "]
        .iter()
        .find_map(|p| line.strip_prefix(p))
        .unwrap_or(line);
    let (name, rest) = line.split_once(':')?;
    let name = name.trim().trim_start_matches("r#");
    let is_ident = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    // `toml::Table` on a continuation line is a path, not a field.
    (is_ident && !rest.starts_with(':')).then(|| name.to_string())
}

#[test]
fn raw_field_extraction_reads_renames_and_skips_the_rest() {
    let src = r#"
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawThing {
            /// Doc comment: with a colon.
            pub plain: Option<Spanned<i64>>,
            #[serde(default, rename = "wire-name")]
            pub rust_name: bool,
            kept_private: u8,
            pub long:
                toml::Table,
            #[serde(flatten)]
            pub inner: RawInner,
        }
        struct NotRaw {
            ignored: u8,
        }
    "#;
    let keys: Vec<String> = raw_fields(src).into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["plain", "wire-name", "kept_private", "long"]);
}

#[test]
fn every_stat_is_documented() {
    let doc = read(DOC);
    let output = std::process::Command::new(switchyard_tests::switchyard_binary())
        .arg("--describe-stats")
        .output()
        .expect("run switchyard --describe-stats");
    let described = String::from_utf8_lossy(&output.stdout).into_owned();
    let missing: Vec<&str> = described
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|name| !doc.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC}, `## Stats`, does not list these stats of `switchyard --describe-stats` (each \
         as a table row starting `| `name` |`):\n  {}",
        missing.join("\n  ")
    );
}
