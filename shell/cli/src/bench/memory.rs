//! `memory`: Valkey bytes per execution — the INFO memory `used_memory` delta
//! over N created executions, delayed (an hour) with a 1-byte payload — and
//! where they go (the execution hash vs the index entries).

use super::util::{self, progress, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::keys::{self, PartitionKeys};
use ff_engine::store::cmd;
use ff_engine::ExecutionSpec;
use std::time::Duration;

/// The figure not to exceed, in bytes per execution.
const TARGET: f64 = 1000.0;

/// Execution hashes sampled with MEMORY USAGE.
const SAMPLE: usize = 200;

async fn used(ctx: &Ctx) -> BenchResult<(f64, f64)> {
    // Let replies drain and the allocator's statistics settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((
        ctx.admin.info_sum("memory", "used_memory").await?,
        ctx.admin.info_sum("memory", "used_memory_dataset").await?,
    ))
}

/// MEMORY USAGE of each key (SAMPLES 0: every element), summed.
async fn usage(ctx: &Ctx, keys: &[String]) -> BenchResult<u64> {
    let cmds: Vec<Vec<Vec<u8>>> = keys
        .iter()
        .map(|k| cmd(["MEMORY", "USAGE", k, "SAMPLES", "0"]))
        .collect();
    let mut sum = 0u64;
    for r in ctx.store.command_many(&cmds).await {
        sum += r?.int().unwrap_or(0).max(0) as u64;
    }
    Ok(sum)
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n.max(1);
    let mut r = ctx.report(Scenario::Memory);
    let (mem0, data0) = used(ctx).await?;
    progress!("creating {n} executions delayed by 1 h with a 1-byte payload");
    let created = util::create_many(ctx, n, |_| {
        ExecutionSpec::new("bench.memory")
            .payload("x")
            .delay(Duration::from_secs(3600))
    })
    .await?;
    let ids = &created.ids;
    let (mem1, data1) = used(ctx).await?;
    let per = (mem1 - mem0) / n as f64;
    let per_dataset = (data1 - data0) / n as f64;

    // Where it goes: a sample of execution hashes, and every index key.
    let step = (ids.len() / SAMPLE).max(1);
    let sample: Vec<String> = ids.iter().step_by(step).map(keys::exec).collect();
    let hash_bytes = usage(ctx, &sample).await? as f64 / sample.len().max(1) as f64;
    let index_keys: Vec<String> = util::flow_partitions(ctx.client.config())
        .into_iter()
        .flat_map(|p| {
            let k = PartitionKeys::new(p);
            [k.delayed(), k.all()]
        })
        .collect();
    let index_bytes = usage(ctx, &index_keys).await? as f64 / n as f64;
    let encoding = ctx
        .store
        .command(&cmd(["OBJECT", "ENCODING", &sample[0]]))
        .await?
        .text()
        .unwrap_or_default();
    let fields = ctx
        .store
        .command(&cmd(["HLEN", &sample[0]]))
        .await?
        .int()
        .unwrap_or(0);
    let keys_total = ctx.admin.key_count().await?;

    r.set("seconds", round(created.secs, 3));
    r.set("bytes_per_execution", round(per, 1));
    r.set("ok", ids.len() as u64 == n);
    r.set("target_bytes_per_execution", TARGET);
    r.set("meets_target", per <= TARGET);
    r.set("dataset_bytes_per_execution", round(per_dataset, 1));
    r.set("exec_hash_bytes", round(hash_bytes, 1));
    r.set("exec_hash_fields", fields);
    r.set("exec_hash_encoding", encoding);
    r.set("index_bytes_per_execution", round(index_bytes, 1));
    r.set("used_memory_before", mem0);
    r.set("used_memory_after", mem1);
    r.set("keys", keys_total);
    created.report(&mut r);
    r.set(
        "allocator",
        ctx.admin.info_text("memory", "mem_allocator").await?,
    );
    Ok(r)
}
