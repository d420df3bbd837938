//! A small YAML document tree that remembers the line of every value, so
//! that `${VAR}` substitution and validation errors can point at the line
//! the operator has to fix. Built from the events of `saphyr-parser`.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// Deeper nesting than this is certainly not a KES config; the limit keeps
/// a hostile file from exhausting the stack of the code walking the tree.
const MAX_DEPTH: usize = 64;

/// Aliases can expand a small file into a huge tree ("billion laughs");
/// no KES config comes near this many values.
const MAX_NODES: usize = 100_000;

/// A YAML value and the (1-based) line where it starts.
#[derive(Clone)]
pub(crate) struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Clone)]
pub(crate) enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any scalar; its text is wiped on drop because configs hold secrets.
    Scalar(Zeroizing<String>),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar key, for lookups and messages.
    pub(super) fn as_key(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A short name of the kind of value, for "expected X, found Y" errors.
    pub(super) fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar(_) => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// A YAML syntax error (or a document this loader refuses).
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
}

fn is_null(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
    match tag {
        Some(t) => t.is_yaml_core_schema() && t.suffix == "null",
        None => style == ScalarStyle::Plain && matches!(text, "" | "~" | "null" | "Null" | "NULL"),
    }
}

impl Builder {
    fn count(&mut self, n: usize, line: usize) -> Result<(), SyntaxError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                line,
                message: format!("document has more than {MAX_NODES} values"),
            });
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn complete(&mut self, node: Node) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => {
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                }
                Ok(())
            }
        }
    }

    fn push(&mut self, frame: Frame, line: usize) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                line,
                message: format!("values nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, line)?;
        self.stack.push(frame);
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let line = span.start.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, line)?;
                let value = if is_null(&text, style, tag.as_deref()) {
                    Value::Null
                } else {
                    Value::Scalar(Zeroizing::new(text.into_owned()))
                };
                let node = Node { line, value };
                self.remember(anchor, &node);
                self.complete(node)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        line,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                let mut node = target.clone();
                node.line = line;
                self.count(node.size(), line)?;
                self.complete(node)
            }
            Event::SequenceStart(anchor, _) => self.push(
                Frame::Seq {
                    line,
                    anchor,
                    items: Vec::new(),
                },
                line,
            ),
            Event::MappingStart(anchor, _) => self.push(
                Frame::Map {
                    line,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                },
                line,
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq {
                        line,
                        anchor,
                        items,
                    }) => {
                        let node = Node {
                            line,
                            value: Value::Seq(items),
                        };
                        self.remember(anchor, &node);
                        node
                    }
                    Some(Frame::Map {
                        line,
                        anchor,
                        entries,
                        ..
                    }) => {
                        let node = Node {
                            line,
                            value: Value::Map(merge_and_check(entries)?),
                        };
                        self.remember(anchor, &node);
                        node
                    }
                    None => {
                        return Err(SyntaxError {
                            line,
                            message: "unbalanced collection end".into(),
                        })
                    }
                };
                self.complete(node)
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }
}

/// Applies YAML merge keys (`<<: *base`, as yaml.v3 does) and refuses
/// duplicate keys (yaml.v3 refuses them too, and a silent "last one wins"
/// could hide a second, forgotten `keystore:` or `policy:` block).
fn merge_and_check(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    let mut own: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (key, value) in entries {
        if key.as_key() == Some("<<") {
            let sources = match value.value {
                Value::Map(_) => vec![value],
                Value::Seq(items) => items,
                _ => {
                    return Err(SyntaxError {
                        line: value.line,
                        message: "merge key '<<' needs a mapping or a list of mappings".into(),
                    })
                }
            };
            for source in sources {
                let Value::Map(source_entries) = source.value else {
                    return Err(SyntaxError {
                        line: source.line,
                        message: "merge key '<<' needs a mapping or a list of mappings".into(),
                    });
                };
                for (k, v) in source_entries {
                    let taken = merged
                        .iter()
                        .any(|(m, _)| m.as_key().is_some() && m.as_key() == k.as_key());
                    if !taken {
                        merged.push((k, v));
                    }
                }
            }
            continue;
        }
        if let Some(name) = key.as_key() {
            if let Some((first, _)) = own.iter().find(|(k, _)| k.as_key() == Some(name)) {
                return Err(SyntaxError {
                    line: key.line,
                    message: format!(
                        "mapping key '{name}' already defined in line {}",
                        first.line
                    ),
                });
            }
        }
        own.push((key, value));
    }
    for (k, v) in merged {
        let overridden = own
            .iter()
            .any(|(o, _)| o.as_key().is_some() && o.as_key() == k.as_key());
        if !overridden {
            own.push((k, v));
        }
    }
    Ok(own)
}

/// Parses the first YAML document of `text` (like yaml.v3's decoder, later
/// documents are not read). `None` means the file holds no document.
pub(crate) fn parse_document(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        let document_end = matches!(event, Event::DocumentEnd);
        builder.event(event, span)?;
        if document_end && builder.stack.is_empty() {
            break;
        }
    }
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse_document(text).unwrap().unwrap()
    }

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            _ => panic!("expected a mapping, found {}", node.kind()),
        }
    }

    #[test]
    fn lines_are_recorded() {
        let doc = root("a: 1\n\nb:\n  c: x\n  d: [1, 2]\n");
        let entries = map(&doc);
        assert_eq!(entries[0].1.line, 1);
        assert_eq!(entries[1].0.line, 3);
        let inner = map(&entries[1].1);
        assert_eq!(inner[0].1.line, 4);
        assert_eq!(inner[1].1.line, 5);
    }

    #[test]
    fn nulls_and_quoted_nulls() {
        let doc = root("a: ~\nb:\nc: 'null'\nd: !!str null\ne: \"\"\n");
        let entries = map(&doc);
        assert!(matches!(entries[0].1.value, Value::Null));
        assert!(matches!(entries[1].1.value, Value::Null));
        assert!(matches!(&entries[2].1.value, Value::Scalar(s) if s.as_str() == "null"));
        assert!(matches!(&entries[3].1.value, Value::Scalar(s) if s.as_str() == "null"));
        assert!(matches!(&entries[4].1.value, Value::Scalar(s) if s.is_empty()));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let doc = root("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        let entries = map(&doc);
        let used = map(&entries[1].1);
        let keys: Vec<_> = used.iter().map(|(k, _)| k.as_key().unwrap()).collect();
        assert_eq!(keys, ["y", "x"]);
        assert!(matches!(&used[0].1.value, Value::Scalar(s) if s.as_str() == "3"));
    }

    #[test]
    fn refuses_duplicates_bombs_and_depth() {
        let err = parse_document("a: 1\nb: 2\na: 3\n").err().unwrap();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("already defined in line 1"));

        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse_document(&bomb)
            .err()
            .unwrap()
            .message
            .contains("more than"));

        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse_document(&deep)
            .err()
            .unwrap()
            .message
            .contains("nested deeper"));
    }

    #[test]
    fn empty_and_syntax_errors() {
        assert!(parse_document("").unwrap().is_none());
        assert!(parse_document("# only a comment\n").unwrap().is_none());
        let err = parse_document("a: b\n c: [\n").err().unwrap();
        assert!(err.line >= 1, "{err:?}");
    }

    #[test]
    fn only_the_first_document_is_read() {
        let doc = root("a: 1\n---\nb: [\n");
        assert_eq!(map(&doc).len(), 1);
    }
}
