//! A flow's DAG as inline SVG: a layered layout computed here (each member
//! one layer right of its deepest drawn parent, roots at the left; within a
//! layer, ordered by where its parents are, to keep lines from crossing),
//! nodes coloured by public state with the stylesheet's state classes, each
//! a link to its execution's page. Nothing is laid out in the browser.

use super::html::{seg, state_class};
use ff_core::contract::flow::{EdgeState, FlowMember};
use maud::{html, Markup};
use std::collections::HashMap;

/// Most members drawn: past this a picture is no longer read.
pub(crate) const MAX_NODES: usize = 200;

const NODE_W: u32 = 160;
const NODE_H: u32 = 30;
const LAYER_GAP: u32 = 60;
const ROW_GAP: u32 = 14;
const MARGIN: u32 = 10;

/// Where each member goes: `layer` (left to right) and `row` (top down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// (layer, row) per member, in the order given.
    pub place: Vec<(usize, usize)>,
    /// Edges between drawn members: (parent index, child index).
    pub edges: Vec<(usize, usize)>,
    /// Layers in all, and the most rows of any layer.
    pub layers: usize,
    pub rows: usize,
}

/// Lay out `members` (their edges to members not among them are left out).
pub(crate) fn layout(members: &[FlowMember]) -> Layout {
    let index: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.execution.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for (c, m) in members.iter().enumerate() {
        for e in &m.parents {
            if let Some(&p) = index.get(e.parent.as_str()) {
                if p != c {
                    edges.push((p, c));
                    parents[c].push(p);
                    children[p].push(c);
                }
            }
        }
    }
    // Longest path from the roots, in topological order (Kahn). The data
    // plane refuses cycles; a damaged one leaves its members at layer 0.
    let mut layer = vec![0usize; members.len()];
    let mut indegree: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..members.len()).filter(|&i| indegree[i] == 0).collect();
    while let Some(n) = ready.pop() {
        for &c in &children[n] {
            layer[c] = layer[c].max(layer[n] + 1);
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    let layers = layer.iter().max().map_or(0, |m| m + 1);
    // Rows: layer by layer, each member at the mean row of its parents
    // (roots in id order), ties kept in id order.
    let mut row = vec![0usize; members.len()];
    let mut rows = 0;
    for l in 0..layers {
        let mut in_layer: Vec<(f64, usize)> = (0..members.len())
            .filter(|&i| layer[i] == l)
            .map(|i| {
                let ps: Vec<usize> = parents[i]
                    .iter()
                    .copied()
                    .filter(|&p| layer[p] < l)
                    .collect();
                let key = if ps.is_empty() {
                    i as f64
                } else {
                    ps.iter().map(|&p| row[p] as f64).sum::<f64>() / ps.len() as f64
                };
                (key, i)
            })
            .collect();
        in_layer.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (r, (_, i)) in in_layer.iter().enumerate() {
            row[*i] = r;
        }
        rows = rows.max(in_layer.len());
    }
    Layout {
        place: layer.into_iter().zip(row).collect(),
        edges,
        layers,
        rows,
    }
}

fn node_x(layer: usize) -> u32 {
    MARGIN + layer as u32 * (NODE_W + LAYER_GAP)
}

fn node_y(row: usize) -> u32 {
    MARGIN + row as u32 * (NODE_H + ROW_GAP)
}

/// The last characters of an id, enough to tell members apart at a glance.
fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(6)..]
}

/// The first characters of a kind that fit a node.
fn fit(kind: &str) -> String {
    if kind.chars().count() <= 22 {
        kind.to_owned()
    } else {
        let cut: String = kind.chars().take(21).collect();
        format!("{cut}…")
    }
}

/// The SVG of `members` (at most [`MAX_NODES`] should be given), links
/// under `base`.
pub(crate) fn svg(base: &str, members: &[FlowMember]) -> Markup {
    let lay = layout(members);
    let width = node_x(lay.layers.max(1)) - LAYER_GAP + MARGIN;
    let height = node_y(lay.rows.max(1)) - ROW_GAP + MARGIN;
    // Each edge's state and whether it passes data, by (parent, child).
    let edge_of = |p: usize, c: usize| {
        members[c]
            .parents
            .iter()
            .find(|e| e.parent == members[p].execution)
            .map(|e| (e.state, e.pass_data))
    };
    html! {
        svg.dag xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label={ "the flow's graph: " (members.len()) " members, " (lay.edges.len()) " edges" }
            data-nodes=(members.len()) data-edges=(lay.edges.len()) {
            defs {
                marker #dag-arrow viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto" {
                    path.arrow d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (p, c) in &lay.edges {
                @let (pl, pr) = lay.place[*p];
                @let (cl, cr) = lay.place[*c];
                @let (x1, y1) = (node_x(pl) + NODE_W, node_y(pr) + NODE_H / 2);
                @let (x2, y2) = (node_x(cl), node_y(cr) + NODE_H / 2);
                @let mid = (x1 + x2) / 2;
                @let (state, data) = edge_of(*p, *c).unwrap_or((EdgeState::Pending, false));
                path class={ "edge e-" (state.as_str()) @if data { " data" } }
                    d=(format!("M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}"))
                    marker-end="url(#dag-arrow)" {
                    title { (members[*p].execution.as_str()) " → " (members[*c].execution.as_str()) ": "
                        (state.as_str()) @if data { ", passes its result" } }
                }
            }
            @for (i, m) in members.iter().enumerate() {
                @let (l, r) = lay.place[i];
                @let (x, y) = (node_x(l), node_y(r));
                a href={ (base) "/executions/" (seg(m.execution.as_str())) } {
                    g.node data-id=(m.execution.as_str()) data-state=(m.state.as_str()) {
                        title { (m.execution.as_str()) " · " (m.kind.as_str()) " · " (m.state.as_str()) }
                        rect class=(state_class(m.state.as_str())) x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" {}
                        text x=(x + 8) y=(y + 13) { (fit(m.kind.as_str())) }
                        text.sub x=(x + 8) y=(y + 25) { "…" (short(m.execution.as_str())) " " (m.state.as_str()) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::contract::flow::MemberEdge;
    use ff_core::flow::JoinPolicy;
    use ff_core::state::PublicState;
    use ff_core::{ExecutionId, Kind, Lane};

    fn member(n: u128, parents: &[u128]) -> FlowMember {
        FlowMember {
            execution: ExecutionId::new(3, n),
            state: PublicState::Waiting,
            lane: Lane::new("default").unwrap(),
            kind: Kind::new("step").unwrap(),
            join: JoinPolicy::AllOf,
            parents: parents
                .iter()
                .map(|p| MemberEdge {
                    parent: ExecutionId::new(3, *p),
                    state: EdgeState::Pending,
                    pass_data: false,
                })
                .collect(),
        }
    }

    #[test]
    fn layers_are_the_longest_path_from_a_root() {
        // a -> b -> d, a -> d, c -> d, and an edge from a member not drawn.
        let ms = [
            member(1, &[]),
            member(2, &[1]),
            member(3, &[]),
            member(4, &[1, 2, 3, 99]),
        ];
        let lay = layout(&ms);
        let layers: Vec<usize> = lay.place.iter().map(|p| p.0).collect();
        assert_eq!(layers, [0, 1, 0, 2]);
        assert_eq!(lay.edges.len(), 4);
        assert_eq!((lay.layers, lay.rows), (3, 2));
    }

    #[test]
    fn a_damaged_cycle_does_not_hang_and_everything_is_placed() {
        let ms = [member(1, &[2]), member(2, &[1]), member(3, &[3])];
        let lay = layout(&ms);
        assert_eq!(lay.place.len(), 3);
        assert_eq!(lay.edges.len(), 2, "a self edge is not drawn");
        let s = svg("", &ms).into_string();
        assert!(s.contains(r#"data-nodes="3""#) && s.contains(r#"data-edges="2""#));
    }

    #[test]
    fn nodes_link_to_their_executions_and_text_is_escaped() {
        let mut m = member(1, &[]);
        m.kind = Kind::new("a.b-c_d").unwrap();
        let s = svg("/ops", &[m]).into_string();
        assert!(s.contains("/ops/executions/%7Bfp%3A3%7D%3A"), "{s}");
        assert!(s.contains("s-waiting"));
        assert_eq!(fit("abcdefghijklmnopqrstuvwxyz"), "abcdefghijklmnopqrstu…");
    }
}
