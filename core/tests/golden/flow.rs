//! `contract::flow`: flows, edges, parent results and the flow-work drain.

use crate::support::*;
use ff_core::contract::flow::*;
use ff_core::flow::FlowSummary;
use ff_core::keys::FlowKeys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, FlowId, Namespace, Partition, PartitionConfig, PartitionFamily};
use std::collections::BTreeMap;

fn flow() -> FlowId {
    FlowId::from_u128(0xf1)
}

fn fk() -> FlowKeys {
    FlowKeys::new(&flow(), &PartitionConfig::default())
}

#[test]
fn create_and_cancel() {
    let f = flow().to_string();
    let key = fk().flow();
    assert_call(
        &create_flow(&fk(), &flow(), &Namespace::new("shop").unwrap()),
        "ff_create_flow",
        &[&key],
        &[&f, "shop"],
        false,
    );
    assert_eq!(decode_create_flow(&ok(vec![b("created")])), Ok(true));
    assert_eq!(decode_create_flow(&ok(vec![b("exists")])), Ok(false));
    assert_decode_error(decode_create_flow(&ok(vec![b("new")])));
    assert_call(
        &cancel_flow(&fk(), &flow(), "stop"),
        "ff_cancel_flow",
        &[&key],
        &[&f, "stop"],
        false,
    );
    assert_eq!(decode_cancel_flow(&ok(vec![b("cancelling")])), Ok(true));
    assert_eq!(decode_cancel_flow(&ok(vec![b("already")])), Ok(false));
    assert_decode_error(decode_cancel_flow(&ok(vec![b("no")])));
}

#[test]
fn edges() {
    let (p, c) = (ExecutionId::new(1, 1), ExecutionId::new(1, 2));
    let mut a = EdgeArgs {
        flow: flow(),
        parent: p.clone(),
        child: c.clone(),
        pass_data: true,
    };
    let f = flow().to_string();
    assert_call(
        &add_edge(&fk(), &a),
        "ff_add_edge",
        &[&fk().flow()],
        &[&f, p.as_str(), c.as_str(), "1"],
        false,
    );
    a.pass_data = false;
    assert_eq!(args(&add_edge(&fk(), &a))[3], "0");
    for (s, d) in [
        ("waiting", EdgeDecision::Waiting),
        ("ready", EdgeDecision::Ready),
        ("impossible", EdgeDecision::Impossible),
        ("recorded", EdgeDecision::Recorded),
        ("unchanged", EdgeDecision::Unchanged),
    ] {
        assert_eq!(
            decode_add_edge(&ok(vec![b("added"), b(s)])),
            Ok(EdgeAdded {
                added: true,
                decision: d
            })
        );
    }
    assert!(
        !decode_add_edge(&ok(vec![b("duplicate"), b("ready")]))
            .unwrap()
            .added
    );
    assert_decode_error(decode_add_edge(&ok(vec![b("dup"), b("ready")])));
    assert_decode_error(decode_add_edge(&ok(vec![b("added"), b("soon")])));
}

#[test]
fn get_flow_record() {
    let f = flow().to_string();
    assert_call(
        &get_flow(&fk(), &flow()),
        "ff_flow_get",
        &[&fk().flow()],
        &[&f],
        true,
    );
    let reply = ok(vec![
        b("ns"),
        b("shop"),
        b("created"),
        b("5"),
        b("n"),
        b("10"),
        b("done"),
        b("9"),
        b("success"),
        b("4"),
        b("failed"),
        b("1"),
        b("cancelled"),
        b("2"),
        b("expired"),
        b("1"),
        b("skipped"),
        b("1"),
        b("cancel"),
        b("enough"),
        b("live:active"),
        b("1"),
        b("live:delayed"),
        b("0"),
        b("changed"),
        b("77"),
    ]);
    assert_eq!(
        decode_get_flow(&flow(), &reply),
        Ok(FlowRecord {
            flow: flow(),
            namespace: Namespace::new("shop").unwrap(),
            created_at_ms: 5,
            summary: FlowSummary {
                members: 10,
                done: 9,
                success: 4,
                failed: 1,
                cancelled: 2,
                expired: 1,
                skipped: 1,
                cancel_requested: true,
            },
            live: [(ff_core::counts::Counted::Active, 1)]
                .into_iter()
                .collect(),
            changed_at_ms: Some(77),
            cancel_reason: Some("enough".into()),
        })
    );
    let bare = decode_get_flow(&flow(), &ok(vec![b("ns"), b("shop")])).unwrap();
    assert_eq!(bare.summary, FlowSummary::default());
    assert_eq!(bare.cancel_reason, None);
    assert_eq!((bare.live.len(), bare.changed_at_ms), (0, None));
    // A live count of no known state, or not a count, is refused.
    assert_decode_error(decode_get_flow(
        &flow(),
        &ok(vec![b("ns"), b("s"), b("live:melted"), b("1")]),
    ));
    assert_decode_error(decode_get_flow(
        &flow(),
        &ok(vec![b("ns"), b("s"), b("live:active"), b("-1")]),
    ));
    assert_decode_error(decode_get_flow(&flow(), &ok(vec![])));
    assert_decode_error(decode_get_flow(&flow(), &ok(vec![b("ns"), b("a b")])));
    assert_decode_error(decode_get_flow(
        &flow(),
        &ok(vec![b("ns"), b("s"), b("n"), b("-1")]),
    ));
}

#[test]
fn parent_results_and_drain() {
    let c = ExecutionId::new(1, 2);
    assert_call(
        &parent_results(&c),
        "ff_parent_results",
        &[&format!("ff:exec:{c}")],
        &[c.as_str()],
        true,
    );
    let (p1, p2) = (ExecutionId::new(1, 3), ExecutionId::new(1, 4));
    assert_eq!(
        decode_parent_results(&ok(vec![
            b(p1.as_str()),
            b("r1"),
            b(p2.as_str()),
            Reply::Nil
        ])),
        Ok(BTreeMap::from([(p1, b"r1".to_vec()), (p2, Vec::new())]))
    );
    assert_decode_error(decode_parent_results(&ok(vec![b("nope"), b("r")])));

    let p = Partition::new(PartitionFamily::Flow, 6);
    assert_call(
        &drain(p, 64),
        "ff_flow_drain",
        &["ff:idx:{fp:6}:flow_work"],
        &["64"],
        false,
    );
    assert_eq!(
        decode_drain(&ok(vec![i(3), i(0)])),
        Ok(Drained {
            worked: 3,
            remaining: 0
        })
    );
    assert_eq!(decode_drain(&ok(vec![i(0), i(7)])).unwrap().remaining, 7);
    assert_decode_error(decode_drain(&ok(vec![i(-1), i(0)])));
    assert_decode_error(decode_drain(&ok(vec![i(0), i(-1)])));
}

#[test]
fn members_page() {
    use ff_core::flow::JoinPolicy;
    use ff_core::state::PublicState;
    let (a, b_, c) = (
        ExecutionId::new(1, 1),
        ExecutionId::new(1, 2),
        ExecutionId::new(1, 3),
    );
    let member =
        |id: &ExecutionId, state: [&str; 3], join: &str, edges: &[(&ExecutionId, &str)]| {
            let mut v = vec![b(id.as_str()), b(state[0]), b(state[1]), b(state[2])];
            v.extend([b("reports"), b("build"), b(join), i(edges.len() as i64)]);
            for (p, s) in edges {
                v.extend([b(p.as_str()), b(s)]);
            }
            v
        };
    let mut items = vec![i(3), i(2)];
    items.extend(member(&a, ["terminal", "", "success"], "", &[]));
    items.extend(member(
        &c,
        ["runnable", "waiting_children", ""],
        "q:2",
        &[(&a, "S"), (&b_, "p")],
    ));
    let page = decode_flow_members(&ok(items)).unwrap();
    assert_eq!((page.total, page.next), (3, Some(2)));
    assert_eq!(page.members.len(), 2);
    let (m0, m1) = (&page.members[0], &page.members[1]);
    assert_eq!(
        (m0.state, m0.join, m0.parents.len()),
        (PublicState::Completed, JoinPolicy::AllOf, 0)
    );
    assert_eq!(
        (m1.state, m1.lane.as_str(), m1.kind.as_str()),
        (PublicState::WaitingChildren, "reports", "build")
    );
    assert_eq!(m1.join, JoinPolicy::parse("q:2").unwrap());
    assert_eq!(
        m1.parents
            .iter()
            .map(|e| (e.parent.clone(), e.state, e.pass_data))
            .collect::<Vec<_>>(),
        vec![
            (a.clone(), EdgeState::Satisfied, true),
            (b_.clone(), EdgeState::Pending, false)
        ]
    );
    // The last page has no next; a page may be empty.
    let last = decode_flow_members(&ok(vec![i(0), i(0)])).unwrap();
    assert_eq!((last.total, last.next, last.members.len()), (0, None, 0));
    // Refused: a negative count, more edges announced than sent, an unknown edge state.
    assert_decode_error(decode_flow_members(&ok(vec![i(-1), i(0)])));
    let mut short = vec![i(1), i(0)];
    short.extend(member(
        &c,
        ["runnable", "eligible", ""],
        "all",
        &[(&a, "s")],
    ));
    short[9] = i(2);
    assert_decode_error(decode_flow_members(&ok(short.clone())));
    // (refused before reading them: 2 edges need 4 fields, 2 are left)
    let refused = decode_flow_members(&ok(short)).unwrap_err().to_string();
    assert!(
        refused.contains("2 edges announced, fewer sent"),
        "{refused}"
    );
    let mut exact = vec![i(1), i(0)];
    exact.extend(member(
        &c,
        ["runnable", "eligible", ""],
        "all",
        &[(&a, "s")],
    ));
    assert_eq!(
        decode_flow_members(&ok(exact)).unwrap().members[0]
            .parents
            .len(),
        1
    );
    let mut odd = vec![i(1), i(0)];
    odd.extend(member(
        &c,
        ["runnable", "eligible", ""],
        "all",
        &[(&a, "x")],
    ));
    assert_decode_error(decode_flow_members(&ok(odd)));
    // Every edge code of data-layout.md's `ff:deps:<eid>`, decoded, and the
    // spelling users see of each state (concepts.md: pending, satisfied or
    // impossible).
    for (code, state, pass_data, spelling) in [
        ("p", EdgeState::Pending, false, "pending"),
        ("P", EdgeState::Pending, true, "pending"),
        ("s", EdgeState::Satisfied, false, "satisfied"),
        ("S", EdgeState::Satisfied, true, "satisfied"),
        ("i", EdgeState::Impossible, false, "impossible"),
        ("I", EdgeState::Impossible, true, "impossible"),
    ] {
        let mut one = vec![i(1), i(0)];
        one.extend(member(
            &c,
            ["runnable", "eligible", ""],
            "all",
            &[(&a, code)],
        ));
        let page = decode_flow_members(&ok(one)).unwrap();
        let e = &page.members[0].parents[0];
        assert_eq!(
            (&e.parent, e.state, e.pass_data, e.state.as_str()),
            (&a, state, pass_data, spelling),
            "edge code {code}"
        );
    }
}
