//! The order a ticket's source packages build in: a source that build-depends on a binary
//! another source of the ticket makes builds after it (its build then finds that binary in
//! the PPA).

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::upload::Dsc;

/// The package names a build-dependency field names: every alternative of every relation,
/// without versions, architecture qualifiers, restrictions or `:any`.
pub fn relation_names(field: &str) -> BTreeSet<String> {
    field
        .split(',')
        .flat_map(|relation| relation.split('|'))
        .filter_map(|alternative| {
            let name: String = alternative
                .trim()
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '(' | '[' | '<' | ':'))
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// What ordering needs of a source package.
#[derive(Debug, Clone)]
pub struct BuildNode {
    /// The source name.
    pub source: String,
    /// The binaries it builds (`Binary`).
    pub binaries: BTreeSet<String>,
    /// What it build-depends on (`Build-Depends`, `-Arch`, `-Indep`).
    pub build_depends: BTreeSet<String>,
}

impl BuildNode {
    /// The node of a `.dsc`.
    pub fn of(dsc: &Dsc) -> BuildNode {
        let mut build_depends = BTreeSet::new();
        for (name, value) in &dsc.fields {
            if matches!(
                name.to_ascii_lowercase().as_str(),
                "build-depends" | "build-depends-arch" | "build-depends-indep"
            ) {
                build_depends.extend(relation_names(value));
            }
        }
        BuildNode {
            source: dsc.source.clone(),
            binaries: dsc.binaries.iter().cloned().collect(),
            build_depends,
        }
    }
}

/// The indices of `nodes` in build order: a node comes after every node whose binaries it
/// build-depends on; otherwise the given order is kept.
///
/// # Errors
/// `InvalidInput` naming the sources when they build-depend on each other in a cycle.
pub fn build_order(nodes: &[BuildNode]) -> Result<Vec<usize>> {
    let mut makers: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for binary in &node.binaries {
            makers.insert(binary.as_str(), i);
        }
    }
    // needs[i]: the nodes i waits for.
    let needs: Vec<BTreeSet<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            node.build_depends
                .iter()
                .filter_map(|dep| makers.get(dep.as_str()).copied())
                .filter(|maker| *maker != i)
                .collect()
        })
        .collect();
    let mut done = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    while order.len() < nodes.len() {
        let next = (0..nodes.len()).find(|&i| !done[i] && needs[i].iter().all(|&n| done[n]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let stuck: Vec<&str> = (0..nodes.len())
                    .filter(|&i| !done[i])
                    .map(|i| nodes[i].source.as_str())
                    .collect();
                return Err(Error::invalid(format!(
                    "these source packages build-depend on each other in a cycle: {}",
                    stuck.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(source: &str, binaries: &[&str], deps: &str) -> BuildNode {
        BuildNode {
            source: source.into(),
            binaries: binaries.iter().map(|b| (*b).to_owned()).collect(),
            build_depends: relation_names(deps),
        }
    }

    #[test]
    fn relations_name_packages_only() {
        let names = relation_names(
            "debhelper-compat (= 13), libfoo-dev (>= 1.2) [amd64] | libbar-dev <!nocheck>, python3:any,\n libbaz-dev",
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "debhelper-compat",
                "libbar-dev",
                "libbaz-dev",
                "libfoo-dev",
                "python3"
            ]
        );
    }

    #[test]
    fn dependents_build_after_what_they_need() {
        let nodes = [
            node("app", &["app"], "debhelper-compat (= 13), libcore-dev"),
            node("tool", &["tool"], "debhelper-compat (= 13)"),
            node(
                "core",
                &["libcore1", "libcore-dev"],
                "debhelper-compat (= 13)",
            ),
        ];
        assert_eq!(build_order(&nodes).unwrap(), [1, 2, 0]);
        let cycle = [
            node("a", &["a"], "b"),
            node("b", &["b"], "a"),
            node("c", &["c"], ""),
        ];
        let err = build_order(&cycle).unwrap_err();
        assert!(err.message().contains("a, b"), "{err}");
        // Building against your own binaries is not a cycle.
        assert_eq!(
            build_order(&[node("self", &["self"], "self")]).unwrap(),
            [0]
        );
    }
}
