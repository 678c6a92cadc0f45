//! What a reply must be: which contract decodes each function's reply,
//! and what the calls sent name (rule 1 of the module doc).

use super::*;

/// Which contract decodes a function's reply, and whether the function acts
/// on one execution record (and so trusts it).
pub(crate) fn per_execution(function: &str) -> bool {
    matches!(
        function,
        "ff_create"
            | "ff_renew"
            | "ff_complete"
            | "ff_fail"
            | "ff_delay"
            | "ff_release"
            | "ff_cancel"
            | "ff_get"
            | "ff_version"
            | "ff_add_edge"
            | "ff_block"
            | "ff_end_many"
            | "ff_create_many"
    )
}

/// The item count a batch reply states (`{1, n, ...}`); a malformed one is
/// caught by the decoder it is then handed to.
pub(crate) fn batch_count(reply: &Reply) -> usize {
    match reply {
        Reply::Array(v) => v
            .get(1)
            .and_then(Reply::int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// A batch's item replies: refusals with a known code are answers; an item
/// that does not decode, or is refused with an unknown code, is the call's.
pub(crate) fn first_failure<T>(
    items: Vec<Result<T, CallError>>,
) -> Result<Option<Vec<Lease>>, CallError> {
    for item in items {
        match item {
            Err(e @ CallError::Rejected(FfError::Other { .. })) | Err(e @ CallError::Decode(_)) => {
                return Err(e)
            }
            Ok(_) | Err(CallError::Rejected(_)) => {}
        }
    }
    Ok(None)
}

/// The lease id and count an `ff_claim` call sent (its fifth and sixth
/// arguments; a count that is not one reads as 0).
pub(crate) fn called_claim(call: &Call) -> (LeaseId, usize) {
    let text = |i: usize| call.args.get(i).and_then(|a| std::str::from_utf8(a).ok());
    let id = text(5)
        .and_then(|s| LeaseId::parse(s).ok())
        .unwrap_or_else(|| LeaseId::from_u128(0));
    (id, text(4).and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// The execution a call's first argument names (a placeholder when it names none).
pub(crate) fn called_execution(call: &Call) -> ExecutionId {
    call.args
        .first()
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|s| ExecutionId::parse(s).ok())
        .unwrap_or_else(|| ExecutionId::new(0, 0))
}

pub(crate) fn decode(call: &Call, reply: &Reply) -> Result<Option<Vec<Lease>>, CallError> {
    let function = call.function;
    Ok(match function {
        "ff_create" => ex::decode_create(reply).map(|_| None)?,
        "ff_claim" => {
            let (id, max) = called_claim(call);
            Some(
                ex::decode_claim(reply, &id, max)?
                    .into_iter()
                    .map(|c| c.lease)
                    .collect(),
            )
        }
        "ff_renew" => ex::decode_renew(reply).map(|_| None)?,
        "ff_complete" | "ff_fail" | "ff_delay" | "ff_release" | "ff_cancel" => {
            ex::decode_ended(function, reply).map(|_| None)?
        }
        // (an id the server would refuse decodes as that refusal under any id)
        "ff_get" => ex::decode_get(&called_execution(call), reply).map(|_| None)?,
        "ff_version" => None,
        "ff_create_flow" => fl::decode_create_flow(reply).map(|_| None)?,
        "ff_add_edge" => fl::decode_add_edge(reply).map(|_| None)?,
        "ff_cancel_flow" => fl::decode_cancel_flow(reply).map(|_| None)?,
        "ff_flow_get" => fl::decode_get_flow(&flow_id(0), reply).map(|_| None)?,
        "ff_flow_drain" => fl::decode_drain(reply).map(|_| None)?,
        // A batch: each item must decode as its single call's reply would.
        "ff_create_many" => {
            let n = batch_count(reply);
            first_failure(ex::decode_create_many(reply, n)?)?
        }
        "ff_end_many" => {
            let n = batch_count(reply);
            first_failure(ex::decode_end_many(reply, n)?)?
        }
        "ff_block_route" => ad::decode_block_route(reply).map(|_| None)?,
        "ff_worker_register" => ad::decode_register_worker(reply).map(|_| None)?,
        "ff_workers_live" => ad::decode_live_workers(reply).map(|_| None)?,
        "ff_budget_define" | "ff_quota_define" => {
            ad::decode_define(function, reply).map(|_| None)?
        }
        "ff_report_usage" => ad::decode_report_usage(reply).map(|_| None)?,
        "ff_budget_get" => ad::decode_get_budget(reply).map(|_| None)?,
        "ff_budget_resets" => ad::decode_budget_resets(reply).map(|_| None)?,
        "ff_budget_reconcile" => ad::decode_budget_reconcile(reply).map(|_| None)?,
        "ff_admit" => ad::decode_admit(reply).map(|_| None)?,
        "ff_quota_release" => ad::decode_release_slot(reply).map(|_| None)?,
        "ff_quota_get" => ad::decode_get_quota(reply).map(|_| None)?,
        "ff_quota_reconcile" => ad::decode_quota_reconcile(reply).map(|_| None)?,
        "ff_block" => ad::decode_block(reply).map(|_| None)?,
        "ff_unblock" => ad::decode_unblock(reply).map(|_| None)?,
        "ff_breach_cancel" => ad::decode_breach_cancel(reply).map(|_| None)?,
        "ff_quota_watch" => ad::decode_watch_quota(reply).map(|_| None)?,
        "ff_budget_reset" => ad::decode_reset_budget(reply).map(|_| None)?,
        "ff_partition_heads" => {
            // Only numbers after the status (the heads of the indexes asked for).
            let mut f = ff_core::contract::ok_fields(function, reply)?;
            while f.remaining() > 0 {
                f.int("head")?;
            }
            None
        }
        f => {
            let out = decode_batch(f, reply)?;
            assert!(
                out.malformed as usize <= out.exceptions.len(),
                "{f}: more malformed than exceptions"
            );
            None
        }
    })
}

pub(crate) fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}
